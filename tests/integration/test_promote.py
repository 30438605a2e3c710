"""`nodestack promote --env prod`: only a dev-tested prod AMI (its app's commit and Node.js version are
what the dev stack runs; a tag moved to another commit is not the same app) is promoted; who, when
and which AMI are recorded; a second run changes nothing. With --to-account the prod account (a
second account id of the local cloud, reached by STS AssumeRole) sees and launches the shared AMI,
its own parameter names it, the stack role's AMI lookup accepts it there, and an AMI nobody shared
is refused."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from nodestack.local_cloud import identities, server
from tests.conftest import BIN, REPO, cli, client, endpoint_in, env_for

PROD_ACCOUNT = "222222222222"
PROD_ROLE = f"arn:aws:iam::{PROD_ACCOUNT}:role/deploy-nodeapp-promote"
PARAMETER = "/nodeapp/prod/ami/latest"
CALLER = f"arn:aws:sts::{identities.ACCOUNT}:user/moto"  # moto's caller for its test keys


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.Endpoint]:
    with endpoint_in(tmp_path_factory.mktemp("promote")) as endpoint:
        yield endpoint


def commit_of(revision: str) -> str:
    """The commit a tag names, as long as nobody moves it."""
    return hashlib.sha1(revision.encode()).hexdigest()


def image(cloud: server.Endpoint, env: str, revision: str, nodejs: str = "22.11.0", commit: str | None = None) -> str:
    """An AMI as the bake leaves it for env (validated, tagged with what it runs); commit "": as
    baked before AMIs recorded it."""
    ec2 = client(cloud.url, "ec2")
    instance = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = str(ec2.create_image(InstanceId=instance, Name=f"nodeapp-{env}-{revision}-{instance}")["ImageId"])
    commit = commit_of(revision) if commit is None else commit
    ec2.create_tags(Resources=[ami], Tags=[{"Key": k, "Value": v} for k, v in {
        "validated": "true", "Project": "nodestack", "App": "nodeapp", "Environment": env,
        "AppRevision": revision, "NodejsVersion": nodejs, **({"AppCommit": commit} if commit else {})}.items()])
    return ami


def dev_runs(cloud: server.Endpoint, ami: str) -> None:
    """The dev stack's group launches ami (its launch template's default version), as rollout.yml leaves it."""
    ec2, asg = client(cloud.url, "ec2"), client(cloud.url, "autoscaling")
    name = "nodeapp-dev"
    templates = ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [name]}])
    if not templates["LaunchTemplates"]:
        template = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": ami})
        asg.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=1, DesiredCapacity=0, AvailabilityZones=["us-east-1a"],
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Default"},
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in
                  {"Project": "nodestack", "App": "nodeapp", "Environment": "dev"}.items()])
        return
    version = ec2.create_launch_template_version(LaunchTemplateName=name, LaunchTemplateData={"ImageId": ami})
    ec2.modify_launch_template(LaunchTemplateName=name,
                               DefaultVersion=str(version["LaunchTemplateVersion"]["VersionNumber"]))


def published(cloud: server.Endpoint, ami: str) -> None:
    """What `nodestack bake --env prod` publishes in the build account."""
    client(cloud.url, "ssm").put_parameter(Name=PARAMETER, Value=ami, Type="String", Overwrite=True)


def promote(cloud: server.Endpoint, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("promote", "--env", "prod", "--app", "nodeapp", *args, env=env_for(cloud), timeout=120)


def tags(cloud: server.Endpoint, ami: str) -> dict[str, str]:
    found = client(cloud.url, "ec2").describe_images(ImageIds=[ami])["Images"][0]
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}


def as_prod(cloud: server.Endpoint) -> dict[str, str]:
    """Credentials of the prod account, as its deployer role gives them."""
    credentials = client(cloud.url, "sts").assume_role(RoleArn=PROD_ROLE, RoleSessionName="test-prod")["Credentials"]
    return {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"]}


def prod_client(cloud: server.Endpoint, service: str) -> Any:
    return client(cloud.url, service, as_prod(cloud))


def test_a_prod_ami_dev_does_not_run_is_refused_naming_both(cloud: server.Endpoint) -> None:
    dev = image(cloud, "dev", "v1.1.0")
    dev_runs(cloud, dev)
    prod = image(cloud, "prod", "v1.2.0")
    published(cloud, prod)
    result = promote(cloud)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"{prod} (prod) runs nodeapp v1.2.0 at {commit_of('v1.2.0')} on Node.js 22.11.0, but the dev stack runs "
            f"v1.1.0 at {commit_of('v1.1.0')} on Node.js 22.11.0 ({dev}, group nodeapp-dev): it is not dev-tested"
            ) in result.stderr
    assert "PromotedBy" not in tags(cloud, prod)


def test_a_tag_moved_to_another_commit_between_the_bakes_is_not_dev_tested(cloud: server.Endpoint) -> None:
    dev = image(cloud, "dev", "v1.5.0")
    dev_runs(cloud, dev)
    moved = "f" * 40  # v1.5.0 force-moved after dev's bake, before prod's
    prod = image(cloud, "prod", "v1.5.0", commit=moved)
    published(cloud, prod)
    result = promote(cloud)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"{prod} (prod) runs nodeapp v1.5.0 at {moved} on Node.js 22.11.0, but the dev stack runs v1.5.0 at "
            f"{commit_of('v1.5.0')} on Node.js 22.11.0 ({dev}, group nodeapp-dev): it is not dev-tested"
            ) in result.stderr
    assert "PromotedBy" not in tags(cloud, prod)
    assert client(cloud.url, "ssm").get_parameter(Name=PARAMETER)["Parameter"]["Value"] == prod  # the bake's, untouched


def test_an_ami_baked_before_amis_recorded_their_commit_is_refused_naming_the_fix(cloud: server.Endpoint) -> None:
    dev_runs(cloud, image(cloud, "dev", "v1.6.0"))
    prod = image(cloud, "prod", "v1.6.0", commit="")
    result = promote(cloud, "--ami", prod)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"{prod} has no AppCommit tag (baked before AMIs recorded their app's commit as AppCommit), so it cannot "
            "be compared with what dev runs: bake it again (`nodestack bake --env prod`)") in result.stderr
    assert "PromotedBy" not in tags(cloud, prod)


def test_a_dev_ami_or_an_unvalidated_one_is_refused(cloud: server.Endpoint) -> None:
    dev = image(cloud, "dev", "v1.3.0")
    dev_runs(cloud, dev)
    result = promote(cloud, "--ami", dev)
    assert result.returncode == 2 and f"{dev} is not a validated prod AMI of nodeapp (Environment=dev)" in result.stderr
    prod = image(cloud, "prod", "v1.3.0")
    client(cloud.url, "ec2").create_tags(Resources=[prod], Tags=[{"Key": "validated", "Value": "false"}])
    result = promote(cloud, "--ami", prod)
    assert result.returncode == 2 and "(validated=false)" in result.stderr


def test_a_dev_tested_ami_is_promoted_once_recording_who_and_when(cloud: server.Endpoint) -> None:
    dev_runs(cloud, image(cloud, "dev", "v2.0.0"))
    prod = image(cloud, "prod", "v2.0.0")
    published(cloud, prod)
    dry = promote(cloud, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"would record the promotion on {prod}" in dry.stdout and "dry run, nothing changed" in dry.stdout
    assert "PromotedBy" not in tags(cloud, prod)

    result = promote(cloud)
    assert result.returncode == 0, result.stdout + result.stderr
    # moto's caller is no IAM entity: the permission check says so (tests/unit/test_promote_permissions.py checks)
    assert f"promote: permissions of {CALLER}: not checked, {CALLER} is not an IAM user or role" in result.stdout
    recorded = tags(cloud, prod)
    assert recorded["PromotedBy"] == CALLER and recorded["PromotedTo"] == identities.ACCOUNT
    assert f"{prod} promoted to prod by {CALLER} at {recorded['PromotedAt']}" in result.stdout
    parameter = client(cloud.url, "ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [PARAMETER]}])["Parameters"][0]
    assert f"promoted by {CALLER} at {recorded['PromotedAt']}" in parameter["Description"]
    assert client(cloud.url, "ssm").get_parameter(Name=PARAMETER)["Parameter"]["Value"] == prod

    again = promote(cloud)
    assert again.returncode == 0 and f"{prod} is already promoted to prod" in again.stdout
    assert "nothing changed" in again.stdout and tags(cloud, prod)["PromotedAt"] == recorded["PromotedAt"]


def find_ami(cloud: server.Endpoint, keys: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**env_for(cloud), **keys, "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run([str(BIN / "ansible-playbook"), "tests/integration/playbooks/find_ami.yml",
                           "-e", "stack_ami_env=prod", "-e", "stack_ami_rollout_only=false", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_separate_prod_account_launches_the_shared_ami_and_nothing_else(cloud: server.Endpoint) -> None:
    dev_runs(cloud, image(cloud, "dev", "v3.0.0"))
    prod = image(cloud, "prod", "v3.0.0")
    unshared = image(cloud, "prod", "v3.0.0")
    published(cloud, unshared)  # the bake's newest in the build account; prod gets the one given
    with pytest.raises(ClientError):  # before the promotion the prod account sees nothing
        prod_client(cloud, "ec2").describe_images(ImageIds=[prod])

    result = promote(cloud, "--ami", prod, "--to-account", PROD_ACCOUNT, "--to-role-arn", PROD_ROLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"share {prod} with account {PROD_ACCOUNT} (launch permission)" in result.stdout
    assert f"{PARAMETER} in account {PROD_ACCOUNT} names it" in result.stdout
    ec2 = client(cloud.url, "ec2")
    snapshot = ec2.describe_images(ImageIds=[prod])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    # launching a shared AMI needs only its launch permission: the snapshots stay unshared
    assert ec2.describe_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")[
        "CreateVolumePermissions"] == []
    assert tags(cloud, prod)["PromotedTo"] == PROD_ACCOUNT
    # the build account's parameter stays the bake's; the prod account's names the promoted AMI
    assert client(cloud.url, "ssm").get_parameter(Name=PARAMETER)["Parameter"]["Value"] == unshared
    assert prod_client(cloud, "ssm").get_parameter(Name=PARAMETER)["Parameter"]["Value"] == prod

    seen = prod_client(cloud, "ec2").describe_images(ImageIds=[prod])["Images"][0]
    # the prod account's own tags on the shared image, set by promote: what the stack and verify read there
    own = {t["Key"]: t["Value"] for t in seen.get("Tags", [])}
    assert seen["OwnerId"] == identities.ACCOUNT and "Project" not in own  # the owner's tags stay its own
    assert {k: own.get(k) for k in ("validated", "AppRevision", "AppCommit", "NodejsVersion", "PromotedTo")} == {
        "validated": "true", "AppRevision": "v3.0.0", "AppCommit": commit_of("v3.0.0"), "NodejsVersion": "22.11.0",
        "PromotedTo": PROD_ACCOUNT}
    launched = prod_client(cloud, "ec2").run_instances(ImageId=prod, MinCount=1, MaxCount=1)["Instances"][0]
    assert launched["ImageId"] == prod
    with pytest.raises(ClientError, match="InvalidAMIID.NotFound"):
        prod_client(cloud, "ec2").run_instances(ImageId=unshared, MinCount=1, MaxCount=1)

    owner = ("-e", f"stack_ami_owner={identities.ACCOUNT}")
    accepted = find_ami(cloud, as_prod(cloud), *owner)
    assert accepted.returncode == 0, accepted.stdout[-3000:]
    assert f"deploys {prod} of account {identities.ACCOUNT}" in accepted.stdout
    refused = find_ami(cloud, as_prod(cloud), *owner, "-e", f"stack_ami_id={unshared}")
    assert refused.returncode != 0 and f"stack_ami_id/AMI {unshared} is missing" in " ".join(refused.stdout.split())
    other_owner = find_ami(cloud, as_prod(cloud), "-e", "stack_ami_owner=333333333333")
    assert other_owner.returncode != 0
    assert (f"is owned by account {identities.ACCOUNT}, not stack_ami_owner 333333333333"
            in " ".join(other_owner.stdout.split())), other_owner.stdout[-3000:]

    again = promote(cloud, "--ami", prod, "--to-account", PROD_ACCOUNT, "--to-role-arn", PROD_ROLE)
    assert again.returncode == 0 and f"already promoted to prod (account {PROD_ACCOUNT})" in again.stdout


def test_prod_credentials_of_another_account_are_refused(cloud: server.Endpoint, tmp_path: Path) -> None:
    dev_runs(cloud, image(cloud, "dev", "v4.0.0"))
    published(cloud, image(cloud, "prod", "v4.0.0"))
    result = promote(cloud, "--to-account", PROD_ACCOUNT, "--to-role-arn", "arn:aws:iam::444444444444:role/x-promote")
    assert result.returncode == 2 and "are of account 444444444444, not --to-account 222222222222" in result.stderr
    missing = promote(cloud, "--to-account", PROD_ACCOUNT)
    assert missing.returncode == 2 and "needs the prod account's credentials" in missing.stderr
