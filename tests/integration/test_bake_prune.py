"""Pruning keeps exactly the newest N validated AMIs per environment, any AMI in use and any shared
with another account."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from nodestack.bake import registry
from nodestack.local_cloud import server
from tests.conftest import cli, client, endpoint_in


@pytest.fixture
def cloud(tmp_path):  # type: ignore[no-untyped-def]
    """A fresh endpoint: pruning counts every AMI of the environment."""
    with endpoint_in(tmp_path) as endpoint:
        yield endpoint


def make_images(ec2: Any, env: str, count: int, validated: str = "true", app: str | None = "nodeapp") -> list[str]:
    """AMIs made the way Packer makes them (instance -> CreateImage), oldest first; app None: as
    nodeapp's were baked before AMIs had an App tag."""
    instance = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ids = []
    for n in range(count):
        ami = ec2.create_image(InstanceId=instance,
                               Name=f"{app or 'nodeapp'}-{env}-{validated}-{n}-{time.monotonic_ns()}")["ImageId"]
        ec2.create_tags(Resources=[ami], Tags=[{"Key": "Project", "Value": "nodestack"},
                                               *([{"Key": "App", "Value": app}] if app else []),
                                               {"Key": "Environment", "Value": env},
                                               {"Key": "validated", "Value": validated}])
        ids.append(ami)
        time.sleep(1.1)  # CreationDate has one-second resolution
    return ids


def test_keeps_newest_validated_and_in_use(cloud: server.Endpoint) -> None:
    ec2, asg = client(cloud.url, "ec2"), client(cloud.url, "autoscaling")
    dev = make_images(ec2, "dev", 4)
    failed = make_images(ec2, "dev", 1, validated="failed") + make_images(ec2, "dev", 1, "failed", app=None)
    prod = make_images(ec2, "prod", 1)
    other_app = make_images(ec2, "dev", 1, validated="failed", app="shop")  # not nodeapp's to prune
    # the oldest dev AMI still backs a launch template, the next a launch configuration
    ec2.create_launch_template(LaunchTemplateName="nodeapp-dev", LaunchTemplateData={"ImageId": dev[0]})
    snapshots = {i["ImageId"]: i["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
                 for i in ec2.describe_images(ImageIds=dev + failed)["Images"]}

    dry = registry.plan_prune(ec2, asg, "nodeapp", "dev", keep=2)
    assert dry.keep == [dev[3], dev[2]] and dry.in_use == [dev[0]]
    assert sorted(dry.remove) == sorted([dev[1], *failed])
    assert len(ec2.describe_images(ImageIds=dev)["Images"]) == 4, "planning removed something"

    asg.create_launch_configuration(LaunchConfigurationName="nodeapp-dev-old", ImageId=dev[1], InstanceType="t3.micro")
    plan = registry.plan_prune(ec2, asg, "nodeapp", "dev", keep=2)
    assert plan.in_use == [dev[1], dev[0]] and sorted(plan.remove) == sorted(failed)

    registry.apply_prune(ec2, plan)
    left = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert left == {*dev, *prod, *other_app}
    remaining_snapshots = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert snapshots[failed[0]] not in remaining_snapshots and snapshots[dev[3]] in remaining_snapshots


def test_an_ami_shared_with_another_account_stays(cloud: server.Endpoint) -> None:
    """A separate prod account launches promoted AMIs from here (nodestack promote --to-account),
    from launch templates this account cannot see: an AMI with a launch permission stays, however
    many promotions came after it."""
    ec2, asg = client(cloud.url, "ec2"), client(cloud.url, "autoscaling")
    prod = make_images(ec2, "prod", 4)
    for ami in prod[:2]:
        ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": "222222222222"}]})
    plan = registry.plan_prune(ec2, asg, "nodeapp", "prod", keep=1)
    assert plan.keep == [prod[3]] and plan.remove == [prod[2]]
    assert plan.shared == {prod[1]: "222222222222", prod[0]: "222222222222"}


def test_keep_below_one_is_refused(cloud: server.Endpoint) -> None:
    with pytest.raises(ValueError, match="keep at least 1"):
        registry.plan_prune(client(cloud.url, "ec2"), client(cloud.url, "autoscaling"), "nodeapp", "dev",
                            keep=0)


def test_prune_command_dry_run_removes_nothing(cloud: server.Endpoint, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ec2 = client(cloud.url, "ec2")
    dev = make_images(ec2, "dev", 3)
    env = {**os.environ, "NODESTACK_STATE_DIR": str(tmp_path)}
    dry = cli("prune", "--env", "dev", "--keep", "1", "--dry-run", env=env)
    assert dry.returncode == 0 and f"would remove {dev[1]}, {dev[0]}" in dry.stdout, dry.stderr
    assert len(ec2.describe_images(ImageIds=dev)["Images"]) == 3
    done = cli("prune", "--env", "dev", "--keep", "1", env=env)
    assert done.returncode == 0 and f"removed {dev[1]}, {dev[0]}" in done.stdout
    assert [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]] == [dev[2]]
