"""Security review (issue 14) on the stack, on a local cloud of this module's own: IMDSv2 on a
launch configuration and on the AMI, the ALB's hardening attributes, deletion protection that
teardown lifts, access logs as a setting, egress, and the loopback check in every playbook."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nodestack.local_cloud import request_log, server
from tests.conftest import client, endpoint_in, env_for, make_image
from tests.integration.test_site_playbook import playbook

HARDENED = ("-e", "stack_launch_kind=configuration", "-e", "stack_lb_deletion_protection=true",
            "-e", "stack_lb_access_logs_bucket=nodeapp-lb-logs", "-e", "stack_lb_access_logs_prefix=local/app",
            "-e", '{"stack_bastion_enabled": true, "stack_admin_cidr": "203.0.113.0/24"}')


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.Endpoint]:
    with endpoint_in(tmp_path_factory.mktemp("security")) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def env(cloud: server.Endpoint) -> dict[str, str]:
    return env_for(cloud)


@pytest.fixture(scope="module")
def promoted(cloud: server.Endpoint) -> str:
    """A promoted AMI marked as the bake marks it (ImdsSupport=v2.0)."""
    ami = make_image(cloud, "true")
    client(cloud.url, "ec2").modify_image_attribute(ImageId=ami, ImdsSupport={"Value": "v2.0"})
    client(cloud.url, "ssm").put_parameter(Name="/nodeapp/dev/ami/latest", Value=ami, Type="String", Overwrite=True)
    return ami


@pytest.fixture(scope="module")
def hardened(env: dict[str, str], promoted: str) -> dict[str, Any]:
    result = playbook(env, "site.yml", *HARDENED)
    assert result.returncode == 0, result.stdout[-4000:]
    return {"stdout": result.stdout}


def _alb_attributes(cloud: server.Endpoint) -> dict[str, str]:
    elbv2 = client(cloud.url, "elbv2")
    arn = elbv2.describe_load_balancers(Names=["nodeapp-local"])["LoadBalancers"][0]["LoadBalancerArn"]
    return {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}


def test_the_ami_is_marked_imdsv2_only_by_the_emulator(cloud: server.Endpoint, promoted: str) -> None:
    # what the bake and verify rely on: EC2 keeps and reports ImdsSupport
    image = client(cloud.url, "ec2").describe_images(ImageIds=[promoted])["Images"][0]
    assert image.get("ImdsSupport") == "v2.0"


def test_launch_configuration_requires_imdsv2(cloud: server.Endpoint, hardened: dict[str, Any]) -> None:
    group = client(cloud.url, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["nodeapp-local"])["AutoScalingGroups"][0]
    config = client(cloud.url, "autoscaling").describe_launch_configurations(
        LaunchConfigurationNames=[group["LaunchConfigurationName"]])["LaunchConfigurations"][0]
    assert config["MetadataOptions"]["HttpTokens"] == "required"
    assert config["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert all(b["Ebs"]["Encrypted"] for b in config["BlockDeviceMappings"])


def test_verify_checks_imds_on_the_ami_and_the_launch_configuration(hardened: dict[str, Any]) -> None:
    assert "nodeapp-local verified:" in hardened["stdout"]


def test_alb_drops_invalid_headers_is_protected_and_logs(cloud: server.Endpoint, hardened: dict[str, Any]) -> None:
    attributes = _alb_attributes(cloud)
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["deletion_protection.enabled"] == "true"
    assert (attributes["access_logs.s3.enabled"], attributes["access_logs.s3.bucket"],
            attributes["access_logs.s3.prefix"]) == ("true", "nodeapp-lb-logs", "local/app")


def test_bastion_egress_is_ssh_to_the_app_servers_only(cloud: server.Endpoint, hardened: dict[str, Any]) -> None:
    groups = {g["GroupName"]: g for g in client(cloud.url, "ec2").describe_security_groups(
        Filters=[{"Name": "tag:Environment", "Values": ["local"]}])["SecurityGroups"]}
    bastion = groups["nodeapp-local-bastion"]
    assert [(p["IpProtocol"], p["FromPort"], [u["GroupId"] for u in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in bastion["IpPermissionsEgress"]] == [("tcp", 22, [groups["nodeapp-local-app"]["GroupId"]], [])]


def test_rerun_changes_nothing(env: dict[str, str], hardened: dict[str, Any]) -> None:
    again = playbook(env, "site.yml", *HARDENED)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-3000:]


@pytest.mark.parametrize("step", ["network.yml", "iam.yml", "teardown.yml", "verify.yml"])
def test_every_playbook_refuses_a_non_loopback_endpoint(cloud: server.Endpoint, env: dict[str, str],
                                                        step: str) -> None:
    # 0.0.0.0 reaches this machine only, so today's code fails differently without sending anything out
    before = request_log.log_size(cloud.request_log)
    result = playbook(env, f"playbooks/{step}", "-e", "aws_endpoint_url=http://0.0.0.0:9")
    assert result.returncode != 0
    assert "aws_endpoint_url=http://0.0.0.0:9 is not a loopback URL" in result.stdout
    assert request_log.count_calls(cloud.request_log, before)[0] == 0


def test_teardown_lifts_deletion_protection_and_removes_everything(cloud: server.Endpoint, env: dict[str, str],
                                                                  hardened: dict[str, Any]) -> None:
    result = playbook(env, "playbooks/teardown.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert client(cloud.url, "elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert client(cloud.url, "ec2").describe_security_groups(
        Filters=[{"Name": "tag:Environment", "Values": ["local"]}])["SecurityGroups"] == []
    assert client(cloud.url, "autoscaling").describe_launch_configurations()["LaunchConfigurations"] == []
