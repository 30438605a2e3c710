"""The build's security group is the bake's own: made before Packer, tagged in the create call,
in the build subnet's VPC (else the default VPC), SSH from the runner's networks only; Packer is
given it and makes none; deleted when the build ends, retrying while its instance terminates."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from nodestack import names
from nodestack.bake import build_group, job, settings
from nodestack.bake.run_owner import RunOwner
from nodestack.bake.target import BakeError, Target

TAGS = [{"Key": "App", "Value": "nodeapp"}, {"Key": "BakeRun", "Value": "nodestack-bake-dev-1"}]


def _group(ec2: Any, group_id: str) -> dict[str, Any]:
    groups: list[dict[str, Any]] = ec2.describe_security_groups(
        Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroups"]
    return groups[0] if groups else {}


@pytest.mark.usefixtures("moto_in_process")
def test_the_group_is_tagged_at_creation_opens_ssh_to_the_runner_only_and_goes_afterwards() -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    calls: list[tuple[str, dict[str, Any]]] = []
    ec2.meta.events.register("provide-client-params.ec2.*",
                             lambda params, model, **_: calls.append((model.name, params)))
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    with build_group.build_group(ec2, "nodestack-bake-dev-1", "", ["203.0.113.7/32"], TAGS, "dev") as group:
        made = _group(ec2, group)
        assert (made["GroupName"], made["Description"], made["VpcId"]) == (
            "nodestack-bake-dev-1", build_group.GROUP_DESCRIPTION, default_vpc)
        assert made["Tags"] == TAGS
        assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]])
                for p in made["IpPermissions"]] == [("tcp", 22, 22, ["203.0.113.7/32"])]
    # the tags are in the create call itself: nothing is tagged afterwards
    assert "CreateTags" not in [name for name, _ in calls]
    created = next(params for name, params in calls if name == "CreateSecurityGroup")
    assert created["TagSpecifications"] == [{"ResourceType": "security-group", "Tags": TAGS}]
    assert _group(ec2, group) == {}


@pytest.mark.usefixtures("moto_in_process")
def test_the_group_is_made_in_the_build_subnets_vpc_and_deleted_after_a_failed_build() -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    with pytest.raises(RuntimeError, match="Packer failed"), \
            build_group.build_group(ec2, "nodestack-bake-prod-1", subnet, ["10.7.0.0/16"], TAGS, "prod") as group:
        assert _group(ec2, group)["VpcId"] == vpc
        raise RuntimeError("Packer failed")
    assert _group(ec2, group) == {}


@pytest.mark.usefixtures("moto_in_process")
@pytest.mark.parametrize("cidrs", [[], ["0.0.0.0/0"], ["10.0.0.0/8"]])
def test_no_group_opens_ssh_to_the_world(cidrs: list[str]) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    with pytest.raises(BakeError), build_group.build_group(ec2, "nodestack-bake-dev-1", "", cidrs, TAGS, "dev"):
        pass
    assert [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]] == ["default"]


def _dependency_violation(stubber: Stubber) -> None:
    stubber.add_client_error("delete_security_group", "DependencyViolation",
                             "resource sg-1 has a dependent object", expected_params={"GroupId": "sg-1"})


def test_deletion_waits_while_the_instance_still_terminates() -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    slept: list[float] = []
    with Stubber(ec2) as stubber:
        _dependency_violation(stubber)
        _dependency_violation(stubber)
        stubber.add_response("delete_security_group", {}, {"GroupId": "sg-1"})
        build_group.delete(ec2, "sg-1", sleep=slept.append)
        stubber.assert_no_pending_responses()
    assert slept == [build_group.DELETE_DELAY_S] * 2


def test_a_group_still_in_use_at_the_end_is_said_and_left_to_the_next_sweep(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    monkeypatch.setattr(build_group, "DELETE_ATTEMPTS", 2)
    monkeypatch.setattr(build_group.time, "sleep", lambda _: None)
    monkeypatch.setattr(build_group, "create", lambda *_: "sg-1")
    monkeypatch.setattr(build_group, "build_vpc", lambda *_: "vpc-1")
    with Stubber(ec2) as stubber:
        _dependency_violation(stubber)
        _dependency_violation(stubber)
        with build_group.build_group(ec2, "nodestack-bake-dev-1", "", ["127.0.0.1/32"], TAGS, "dev"):
            pass
        stubber.assert_no_pending_responses()
    assert "[dev] could not delete the build's security group sg-1 (the next bake of dev will)" \
        in capsys.readouterr().out


@pytest.mark.usefixtures("moto_in_process")
def test_packer_is_given_the_bakes_group(tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    owner = RunOwner.start("nodestack", "nodeapp", "dev", "nodestack-bake-dev-20300101000000-aaaaaa",
                           tmp_path / "dev.lock", 1800, datetime.now(timezone.utc))
    target = Target(False, "us-east-1", {}, ssh_cidrs=("203.0.113.7/32",))
    env_settings = SimpleNamespace(env="dev", subnet_id="")
    with job.build_host(target, env_settings, owner, ec2, tmp_path) as reach:  # type: ignore[arg-type]
        group = _group(ec2, reach["security_group_id"])
        assert {t["Key"]: t["Value"] for t in group["Tags"]} == owner.tags()
        assert group["IpPermissions"][0]["IpRanges"][0]["CidrIp"] == "203.0.113.7/32"
    assert _group(ec2, reach["security_group_id"]) == {}


@pytest.mark.parametrize(("written", "subnet"), [
    ('env = "dev"\n', ""),
    ('env = "dev"\nsubnet_id = "subnet-0123abcd" # the build VPC\n', "subnet-0123abcd"),
    ('# subnet_id = "subnet-0123abcd"\n', ""),
    ('subnet_id = ""\n', ""),
])
def test_the_build_subnet_is_read_from_packers_variables(written: str, subnet: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dev.pkrvars.hcl").write_text(written)
    monkeypatch.setattr(settings, "var_file", lambda env: tmp_path / f"{env}.pkrvars.hcl")
    assert settings.build_subnet("dev") == subnet


def test_a_subnet_that_is_no_literal_id_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dev.pkrvars.hcl").write_text("subnet_id = var.other\n")
    monkeypatch.setattr(settings, "var_file", lambda env: tmp_path / f"{env}.pkrvars.hcl")
    with pytest.raises(settings.BakeConfigError, match="subnet_id = var.other in .* is invalid"):
        settings.build_subnet("dev")


# CreateSecurityGroup / AuthorizeSecurityGroupIngress: what EC2 takes in a VPC group's name and descriptions
_EC2_TEXT = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{1,255}$")


def test_the_groups_texts_are_what_ec2_takes() -> None:
    run = f"{names.project()}-bake-dev-20261205112556-22c81a"  # the group's name: its run's (job.bake_env)
    for text in (build_group.GROUP_DESCRIPTION, build_group.RULE_DESCRIPTION, run):
        assert _EC2_TEXT.match(text), f"EC2 refuses {text!r} (moto does not)"


def test_ipv6_networks_are_given_as_ipv6_ranges() -> None:
    permission = build_group.ssh_permission(["203.0.113.7/32", "2001:db8:1::/48"])
    assert [r["CidrIp"] for r in permission["IpRanges"]] == ["203.0.113.7/32"]
    assert [r["CidrIpv6"] for r in permission["Ipv6Ranges"]] == ["2001:db8:1::/48"]
