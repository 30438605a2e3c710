"""Where a bake runs: the local cloud or an AWS account, with the credentials (session token
included), who they are (asked of STS once per run), and the network the build host's SSH port
opens to."""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from nodestack.local_cloud import ami_images, server


class BakeError(RuntimeError):
    """A bake that cannot go on, with the message to show: what is wrong and the fix."""


# The build host's SSH port opens only to these networks: none broader than a /16 (Packer's
# default, when given none, is 0.0.0.0/0). Set with --ssh-cidr or NODESTACK_BAKE_SSH_CIDRS.
SSH_CIDRS_ENV = "NODESTACK_BAKE_SSH_CIDRS"
SSH_CIDR_MIN_PREFIX = 16
SSH_CIDR_MIN_PREFIX_V6 = 48  # a site's allocation: a /16 of IPv6 is a good part of the internet
SSH_INTERFACES = ("public_ip", "private_ip")


@dataclass(frozen=True)
class Caller:
    """Who the credentials are, as STS GetCallerIdentity answered."""

    account: str
    arn: str


@dataclass(frozen=True)
class Target:
    local: bool
    region: str
    aws_env: dict[str, str]  # for Packer and boto3
    ssh_cidrs: tuple[str, ...] = ("127.0.0.1/32",)  # the build's security group (build_group): SSH from these only
    ssh_interface: str = "public_ip"
    caller: Caller | None = None  # as preflight asked it (identified); other credentials: None
    cloud_id: str = ""  # the local cloud's (its port): its AMIs' images are named after it

    def local_image(self, ami_id: str) -> str:
        """The AMI's image on the local cloud, which boots its instances."""
        if not self.cloud_id:
            raise BakeError(f"{ami_id} has no local image: only a local cloud's AMIs have one (this target names none)")
        return ami_images.ami_image(self.cloud_id, ami_id)

    def identity(self) -> Caller:
        """Who these credentials are: as preflight asked it, else asked of STS now."""
        if self.caller is not None:
            return self.caller
        answer = self.client("sts").get_caller_identity()
        return Caller(str(answer["Account"]), str(answer["Arn"]))

    def identified(self) -> Target:
        """This target carrying its caller: STS asked once, for every later step of the run."""
        return replace(self, caller=self.identity())

    def client(self, service: str, region: str = "") -> Any:
        """Every boto3 client of the bake: temporary credentials need their session token. region:
        another than the bake's (an SNS topic's)."""
        return boto3.client(service, region_name=region or self.region,
                            endpoint_url=self.aws_env.get("AWS_ENDPOINT_URL"),
                            aws_access_key_id=self.aws_env.get("AWS_ACCESS_KEY_ID"),
                            aws_secret_access_key=self.aws_env.get("AWS_SECRET_ACCESS_KEY"),
                            aws_session_token=self.aws_env.get("AWS_SESSION_TOKEN"),
                            config=Config(retries={"max_attempts": 3}))


def resolve_target(local: bool) -> Target:
    if not local:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return Target(False, region, {k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    endpoint = server.current()
    if endpoint is None:
        raise BakeError("the local cloud is not running: start it with `nodestack local up` (or use --target aws)")
    return Target(True, server.DEFAULT_REGION, server.environment(endpoint.port), cloud_id=str(endpoint.port))


def packer_env(target: Target) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)  # Packer's Ansible provisioner runs ansible-playbook
    return {**os.environ, **target.aws_env, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "CHECKPOINT_DISABLE": "1"}  # Packer must not call home (version check, telemetry)


def ssh_cidrs(given: list[str] | None) -> list[str]:
    """The networks the build host's SSH port opens to: --ssh-cidr, else NODESTACK_BAKE_SSH_CIDRS;
    BakeError unless each is a network no broader than /SSH_CIDR_MIN_PREFIX."""
    cidrs = list(given or []) or [c.strip() for c in os.environ.get(SSH_CIDRS_ENV, "").split(",") if c.strip()]
    if not cidrs:
        raise BakeError("no --ssh-cidr given: the build host's SSH port would be open to 0.0.0.0/0; give the "
                        f"runner's address, such as --ssh-cidr 203.0.113.7/32 (or set {SSH_CIDRS_ENV})")
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise BakeError(f"--ssh-cidr {cidr} is invalid: {exc}") from exc
        least = SSH_CIDR_MIN_PREFIX if network.version == 4 else SSH_CIDR_MIN_PREFIX_V6
        if network.prefixlen < least:
            raise BakeError(f"--ssh-cidr {cidr} is too broad: give the runner's address or a network of "
                            f"at least /{least}")
    return cidrs
