"""The build instance's security group, made by the bake before Packer runs: tagged with the
run's tags in the create call itself (App among them: the bake's deployer may create and open
only such a group), in the build subnet's VPC (the default VPC when the template names no
subnet, where EC2 would put Packer's own), SSH (TCP 22) from the target's networks only.
Packer launches into it (security_group_id) and makes none of its own, which it could not tag.
Deleted when the build ends, also on failure or interrupt; a killed run's by the next bake's
sweep (leftovers.sweep_cloud), which knows it by its name (its run's) and its description."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nodestack.bake.target import BakeError, ssh_cidrs

# EC2 takes only a-z A-Z 0-9 spaces and ._-:/()#,@[]+=&;{}!$* in a VPC group's names and
# descriptions (moto takes anything): tests/unit/test_bake_build_group.py checks them.
GROUP_DESCRIPTION = "SSH to a nodestack bake build instance"
RULE_DESCRIPTION = "the bake runner"
SSH_PORT = 22
# Its build instance may still be terminating (Packer stopped mid-build): EC2 refuses to delete a
# group in use (DependencyViolation) until the instance is gone, a minute or two on AWS.
DELETE_DELAY_S, DELETE_ATTEMPTS = 5.0, 120


def build_vpc(ec2: Any, subnet_id: str) -> str:
    """The VPC the build instance is launched into: its subnet's, else the region's default VPC."""
    if subnet_id:
        return str(ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["VpcId"])
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise BakeError("the region has no default VPC for the build instance: set subnet_id in "
                        "packer/vars/<env>.pkrvars.hcl")
    return str(vpcs[0]["VpcId"])


def create(ec2: Any, name: str, vpc_id: str, cidrs: Sequence[str], tags: list[dict[str, str]]) -> str:
    """The group, tagged at creation and open for SSH from cidrs only; its id. A group that could
    not be opened is deleted again."""
    group = str(ec2.create_security_group(
        GroupName=name, Description=GROUP_DESCRIPTION, VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}])["GroupId"])
    try:
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[ssh_permission(cidrs)])
    except (BotoCoreError, ClientError):
        try:
            delete(ec2, group, attempts=1)
        except (BotoCoreError, ClientError) as exc:  # the refusal above is the error to report
            print(f"could not delete the build's security group {group} (the next bake will): {exc}", flush=True)
        raise
    return group


def ssh_permission(cidrs: Sequence[str]) -> dict[str, Any]:
    """SSH from cidrs: IPv4 networks as IpRanges, IPv6 as Ipv6Ranges (EC2 refuses them mixed)."""
    v6 = [c for c in cidrs if ipaddress.ip_network(c).version == 6]
    return {"IpProtocol": "tcp", "FromPort": SSH_PORT, "ToPort": SSH_PORT,
            "IpRanges": [{"CidrIp": c, "Description": RULE_DESCRIPTION} for c in cidrs if c not in v6],
            "Ipv6Ranges": [{"CidrIpv6": c, "Description": RULE_DESCRIPTION} for c in v6]}


def delete(ec2: Any, group_id: str, attempts: int = DELETE_ATTEMPTS, delay_s: float = DELETE_DELAY_S,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """Delete the group, retrying while an instance still uses it; one already gone is fine."""
    for attempt in range(1, attempts + 1):
        try:
            ec2.delete_security_group(GroupId=group_id)
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidGroup.NotFound":
                return
            if code != "DependencyViolation" or attempt == attempts:
                raise
        sleep(delay_s)


@contextmanager
def build_group(ec2: Any, name: str, subnet_id: str, cidrs: Sequence[str], tags: list[dict[str, str]],
                env: str) -> Iterator[str]:
    """`with build_group(...) as group_id:` the group for one build (name: the run's), deleted on
    the way out. A group that cannot be deleted is said, not raised: the AMI is not lost for it,
    and the next bake's sweep deletes it."""
    if not cidrs:
        raise BakeError("no network to open the build host's SSH port to")
    group = create(ec2, name, build_vpc(ec2, subnet_id), ssh_cidrs(list(cidrs)), tags)  # preflight's check again
    try:
        yield group
    finally:
        try:
            delete(ec2, group)
        except (BotoCoreError, ClientError) as exc:
            print(f"[{env}] could not delete the build's security group {group} (the next bake of {env} "
                  f"will): {' '.join(str(exc).split())}", flush=True)
