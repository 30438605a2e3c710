"""The deployer policies of policies/, proven on a local cloud that enforces IAM: the bake,
site.yml, a rollout, blue/green and teardown run as a deployer holding exactly those policies,
and a deployer missing one statement is stopped by preflight, naming the action, before
anything is created."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from nodestack import permissions
from nodestack.local_cloud import identities, request_log, server
from tests.conftest import cli, client, endpoint_in, env_for, make_image, using_state
from tests.integration.test_site_playbook import playbook, recap
from tests.integration.test_stack_lifecycle import template_ami, writes_since

DEPLOYER_ARN = f"arn:aws:iam::{identities.ACCOUNT}:user/{identities.DEPLOYER}"
SCOPE = identities.local_scope(server.DEFAULT_REGION)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.Endpoint]:
    with endpoint_in(tmp_path_factory.mktemp("enforced"), enforce_iam=True) as endpoint:
        yield endpoint


def keys(cloud: server.Endpoint, identity: str) -> dict[str, str]:
    with using_state(cloud.request_log.parent):
        return identities.credentials(identity)


def env_as(cloud: server.Endpoint, identity: str) -> dict[str, str]:
    """The environment `eval "$(nodestack local env --as IDENTITY)"` gives a shell."""
    with using_state(cloud.request_log.parent):
        return {**env_for(cloud), **server.environment(cloud.port, identity)}


def admin(cloud: server.Endpoint, service: str) -> Any:
    return client(cloud.url, service, keys(cloud, identities.ADMIN))


def test_only_the_identities_calls_are_allowed(cloud: server.Endpoint) -> None:
    deployer = keys(cloud, identities.DEPLOYER)
    assert client(cloud.url, "ec2", deployer).describe_vpcs()["Vpcs"] is not None
    with pytest.raises(ClientError, match="AccessDenied"):
        client(cloud.url, "iam", deployer).create_user(UserName="intruder")
    with pytest.raises(ClientError, match="UnauthorizedOperation"):  # EC2: only resources tagged for the app
        client(cloud.url, "ec2", deployer).create_vpc(CidrBlock="10.9.0.0/16")
    with pytest.raises(ClientError, match="AuthFailure"):
        client(cloud.url, "ec2").describe_vpcs()  # moto's usual keys open nothing here
    assert admin(cloud, "iam").get_user(UserName=identities.DEPLOYER)["User"]["Arn"] == DEPLOYER_ARN


def test_a_deployer_missing_a_statement_is_stopped_by_preflight_before_any_change(cloud: server.Endpoint) -> None:
    iam = admin(cloud, "iam")
    arn = f"arn:aws:iam::{identities.ACCOUNT}:policy/nodeapp-deployer-stack-network"
    document = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    without = [s for s in document["Statement"] if s["Sid"] != "CreateTagged"]
    assert len(without) == len(document["Statement"]) - 1
    iam.create_policy_version(PolicyArn=arn, SetAsDefault=True,
                              PolicyDocument=json.dumps({**document, "Statement": without}))
    try:
        before = request_log.log_size(cloud.request_log)
        result = playbook(env_as(cloud, identities.DEPLOYER), "site.yml")
        writes = writes_since(cloud, before)
    finally:
        iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
        iam.delete_policy_version(PolicyArn=arn, VersionId="v2")
    assert result.returncode != 0
    failed = result.stdout.split("TASK [stack : Check the caller may make every call of this run]")[1]
    created = next(s for s in permissions.render("stack-network", SCOPE)["Statement"] if s["Sid"] == "CreateTagged")
    # each action on each resource of the statement (no other statement of the deployer's grants one)
    lacking = len(created["Action"]) * len(created["Resource"])
    vpcs = f"arn:aws:ec2:{SCOPE.region}:{SCOPE.account}:vpc/*"
    assert (f"{DEPLOYER_ARN} may not make {lacking} of the calls this stack run makes: "
            f"ec2:CreateVpc on {vpcs} (implicitDeny; statement CreateTagged)") in failed, failed[:3000]
    assert "statement CreateTagged" in failed and "Nothing was created" in failed
    assert writes == []


def test_the_deployer_bakes_deploys_rolls_out_shifts_colours_and_tears_down(cloud: server.Endpoint,
                                                                          test_fixtures: Path) -> None:
    env = env_as(cloud, identities.DEPLOYER)
    baked = cli("bake", "--env", "dev", env=env, timeout=1500)
    assert baked.returncode == 0, (baked.stdout + baked.stderr)[-3000:]
    assert f"permissions of {DEPLOYER_ARN}: every call of the bake policy allowed" in baked.stdout
    # set by the bake once the image carries the app's tag (Packer would set it before)
    ami = admin(cloud, "ssm").get_parameter(Name="/nodeapp/dev/ami/latest")["Parameter"]["Value"]
    image = admin(cloud, "ec2").describe_images(ImageIds=[ami])["Images"][0]
    assert image["Description"].startswith("nodeapp dev app server, app "), image.get("Description")

    built = playbook(env, "site.yml")
    assert built.returncode == 0, built.stdout[-3000:]
    assert f"permissions of {DEPLOYER_ARN} checked" in built.stdout
    assert re.search(r"nodeapp-local verified: \d+ passed", built.stdout), built.stdout[-2000:]

    new_ami = make_image(cloud, "true", keys(cloud, identities.ADMIN))
    admin(cloud, "ssm").put_parameter(Name="/nodeapp/dev/ami/latest", Value=new_ami, Type="String", Overwrite=True)
    rolled = playbook(env, "playbooks/rollout.yml")
    assert rolled.returncode == 0, rolled.stdout[-3000:]
    assert template_ami(cloud, keys(cloud, identities.ADMIN)) == new_ami

    assert playbook(env, "playbooks/teardown.yml").returncode == 0  # blue/green replaces the single release
    for args in (["-e", "stack_color=blue"], ["-e", "stack_color=green", "-e", "stack_dns_weight=0"]):
        deployed = playbook(env, "site.yml", *args)
        assert deployed.returncode == 0, deployed.stdout[-3000:]
    shifted = playbook(env, "playbooks/bluegreen.yml", "-e", "bluegreen_to=green",
                       "-e", '{"stack_bluegreen_steps": [100]}')
    assert shifted.returncode == 0, shifted.stdout[-3000:]

    torn = playbook(env, "playbooks/teardown.yml")
    assert torn.returncode == 0 and recap(torn.stdout)["failed"] == 0, torn.stdout[-3000:]
    left = admin(cloud, "ec2").describe_vpcs(Filters=[{"Name": "tag:Project", "Values": ["nodestack"]}])["Vpcs"]
    assert left == []
    assert admin(cloud, "iam").list_roles(PathPrefix="/nodestack/")["Roles"] == []
    assert admin(cloud, "iam").list_instance_profiles(PathPrefix="/nodestack/")["InstanceProfiles"] == []
