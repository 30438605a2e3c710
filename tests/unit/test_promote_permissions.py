"""`nodestack promote` simulates its calls before it reads or changes anything, as the bake and
the stack do: the build account's caller against policies/promote.yml, and with --to-account the
prod account's role against promote-target.yml. moto in this process (its IAM simulation fixed,
IAM not enforced): a caller lacking a statement would otherwise get every call through."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator

import boto3
import pytest

from nodestack import permissions
from nodestack.bake import promote
from nodestack.bake.target import Target
from nodestack.local_cloud import fix_simulate_principal_policy

REGION, BUILD, PROD = "us-east-1", "123456789012", "444455556666"  # moto's own account builds
PROD_ROLE = f"arn:aws:iam::{PROD}:role/deploy-nodeapp-promote"
PARAMETER = "/nodeapp/prod/ami/latest"


@pytest.fixture
def cloud(moto_in_process: None) -> Iterator[dict[str, str]]:
    """A dev group launching an AMI of commit C, and the bake's prod AMI of C published: promotable."""
    fix_simulate_principal_policy.apply()
    ec2, autoscaling = boto3.client("ec2", region_name=REGION), boto3.client("autoscaling", region_name=REGION)
    amis: dict[str, str] = {}
    for env in ("dev", "prod"):
        instance = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        amis[env] = ec2.create_image(InstanceId=instance, Name=f"nodeapp-{env}-20260101000000")["ImageId"]
        ec2.create_tags(Resources=[amis[env]], Tags=[{"Key": k, "Value": v} for k, v in {
            "validated": "true", "Project": "nodestack", "App": "nodeapp", "Environment": env,
            "AppRevision": "v1.0.0", "AppCommit": "c" * 40, "NodejsVersion": "22.11.0"}.items()])
    template = ec2.create_launch_template(LaunchTemplateName="nodeapp-dev", LaunchTemplateData={"ImageId": amis["dev"]})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="nodeapp-dev", MinSize=0, MaxSize=1, DesiredCapacity=0, AvailabilityZones=["us-east-1a"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Default"},
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in
              {"Project": "nodestack", "App": "nodeapp", "Environment": "dev"}.items()])
    boto3.client("ssm", region_name=REGION).put_parameter(Name=PARAMETER, Value=amis["prod"], Type="String")
    yield amis


def _without(kind: str, scope: permissions.Scope, sid: str) -> str:
    document = permissions.render(kind, scope)
    kept = [s for s in document["Statement"] if s["Sid"] != sid]
    assert len(kept) == len(document["Statement"]) - (1 if sid else 0), sid
    return json.dumps({**document, "Statement": kept})


def promoter(lacking: str = "", other_account: str = "") -> dict[str, str]:
    """The keys of a user of the build account holding the promote policy, but for statement lacking."""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="promoter")
    iam.put_user_policy(UserName="promoter", PolicyName="promote", PolicyDocument=_without(
        "promote", permissions.Scope("nodeapp", BUILD, REGION, other_account=other_account), lacking))
    key = iam.create_access_key(UserName="promoter")["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def prod_role(lacking: str) -> None:
    """The prod account's deploy-nodeapp-promote, holding promote-target but for statement lacking."""
    keys = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{PROD}:role/admin", RoleSessionName="admin")["Credentials"]
    iam = boto3.client("iam", region_name=REGION, aws_access_key_id=keys["AccessKeyId"],
                       aws_secret_access_key=keys["SecretAccessKey"], aws_session_token=keys["SessionToken"])
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"AWS": f"arn:aws:iam::{BUILD}:root"}}]}
    iam.create_role(RoleName="deploy-nodeapp-promote", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="deploy-nodeapp-promote", PolicyName="promote-target", PolicyDocument=_without(
        "promote-target", permissions.Scope("nodeapp", PROD, REGION, other_account=BUILD), lacking))


def run(monkeypatch: pytest.MonkeyPatch, keys: dict[str, str], *to: str) -> int:
    monkeypatch.setattr(promote, "resolve_target", lambda local: Target(False, REGION, keys))
    args = argparse.Namespace(env="prod", target="aws", ami=None, app="nodeapp", dry_run=False, check_permissions=True,
                              to_account=PROD if to else None, to_role_arn=PROD_ROLE if to else None, to_profile=None)
    return promote.run(args)


def recorded(ami: str) -> dict[str, str]:
    image = boto3.client("ec2", region_name=REGION).describe_images(ImageIds=[ami])["Images"][0]
    return {t["Key"]: t["Value"] for t in image.get("Tags", []) if t["Key"].startswith("Promoted")}


def test_a_caller_lacking_a_statement_is_stopped_before_any_change_naming_the_action(
        cloud: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(promote.PromoteError) as refused:
        run(monkeypatch, promoter(lacking="PromoteRecord"))
    assert str(refused.value).startswith(
        f"arn:aws:iam::{BUILD}:user/promoter may not make 1 of the calls this promote run makes: ec2:CreateTags on "
        f"arn:aws:ec2:{REGION}::image/* (implicitDeny; statement PromoteRecord). Nothing was created. Give it the "
        f"promote policies as `nodestack policy KIND --app nodeapp --account-id {BUILD} --region {REGION}`")
    assert recorded(cloud["prod"]) == {}
    parameter = boto3.client("ssm", region_name=REGION).get_parameter(Name=PARAMETER)["Parameter"]
    assert parameter["Value"] == cloud["prod"] and parameter["Version"] == 1


def test_a_caller_holding_the_policy_is_checked_and_promotes(cloud: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(monkeypatch, promoter()) == 0
    said = capsys.readouterr().out
    assert f"promote: permissions of arn:aws:iam::{BUILD}:user/promoter: every call of the promote policy allowed" \
        in said
    assert said.index("every call of the promote policy allowed") < said.index("dev-tested")
    assert recorded(cloud["prod"])["PromotedBy"] == f"arn:aws:iam::{BUILD}:user/promoter"


def test_the_prod_accounts_role_lacking_a_statement_stops_it_before_sharing(
        cloud: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    prod_role(lacking="PromoteTargetParameter")
    with pytest.raises(promote.PromoteError) as refused:
        run(monkeypatch, promoter(other_account=PROD), "--to-account")
    assert "every call of the promote policy allowed" in capsys.readouterr().out  # the build account's side
    assert str(refused.value).startswith(
        f"{PROD_ROLE} may not make 2 of the calls this promote-target run makes: ssm:GetParameter on "
        f"arn:aws:ssm:{REGION}:{PROD}:parameter{PARAMETER} (implicitDeny; statement PromoteTargetParameter); "
        f"ssm:PutParameter on arn:aws:ssm:{REGION}:{PROD}:parameter{PARAMETER}")
    assert (f"`nodestack policy KIND --app nodeapp --account-id {PROD} --region {REGION} --other-account {BUILD}`"
            in str(refused.value))
    ec2 = boto3.client("ec2", region_name=REGION)
    assert ec2.describe_image_attribute(ImageId=cloud["prod"], Attribute="launchPermission")[
        "LaunchPermissions"] == []
    assert recorded(cloud["prod"]) == {}


def test_a_caller_that_cannot_be_simulated_is_told_how_to_skip_the_check(
        cloud: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    moto = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto's caller: no IAM entity
    with pytest.raises(promote.PromoteError, match=r"or skip the check \(nodestack promote --no-permission-check\)"):
        run(monkeypatch, moto)
    assert recorded(cloud["prod"]) == {}
