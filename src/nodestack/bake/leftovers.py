"""What killed bakes of an environment left behind, removed by the environment's next bake
before it creates anything: Packer's build instance, the bake's security group of it, the
job's one-time key pair (on AWS and in the local cloud), the build container and its boot
probe (local mode), and the private key files in the state directory.

Only what carries this project's, app's and environment's tags and a run that is provably
over (run_owner.run_is_over) is touched; a security group only when the bake made it (named
after its run, described as build_group describes it) and only after the instances are gone.
Nothing else in the account is."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from nodestack.bake import run_owner
from nodestack.bake.build_group import GROUP_DESCRIPTION
from nodestack.bake.build_host import BUILD_HOST_ROLE, ROLE_LABEL, BuildHostError, podman
from nodestack.bake.registry import tags_of
from nodestack.bake.run_owner import TAG_RUN, run_is_over, tags_of_labels

UNFINISHED_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]
# Terminating an instance takes a minute or two on AWS: up to 10 minutes before giving up.
TERMINATION_WAIT = {"Delay": 5, "MaxAttempts": 120}
BOOT_PROBE_SUFFIX = "-boot"  # validate.commit_and_boot's container: the build container's name + this
# The build's files in the state directory: its work directory (.state/bake/<env>-<stamp>/) and,
# locally, the build host's scratch directory (.state/<project>-bake-<env>-<stamp>-<hex>-*/).
KEY_FILES = ("build_key", "build_key.pub", "playbook-vars.json")


@dataclass
class Sweep:
    """What a sweep removed, and what it found but could not remove (with why)."""

    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, other: Sweep) -> None:
        self.removed += other.removed
        self.failed += other.failed


def _filters(scope: Mapping[str, str]) -> list[dict[str, Any]]:
    return [*({"Name": f"tag:{key}", "Values": [value]} for key, value in scope.items()),
            {"Name": "tag-key", "Values": [TAG_RUN]}]


def _error(exc: Exception) -> str:
    return " ".join(str(exc).split())


def sweep_cloud(ec2: Any, scope: Mapping[str, str], held_lock: Path, now: datetime) -> Sweep:
    """Terminate the ended runs' build instances and wait until they are gone, then delete their
    security groups and key pairs. scope: RunOwner.scope() of the sweeping run."""
    sweep = Sweep()
    instances = [i for page in ec2.get_paginator("describe_instances").paginate(
                     Filters=[*_filters(scope), {"Name": "instance-state-name", "Values": UNFINISHED_STATES}])
                 for r in page["Reservations"] for i in r["Instances"]]
    ended = [i for i in instances if run_is_over(tags_of(i), held_lock, now)]
    terminated = True
    if ended:
        ids = [i["InstanceId"] for i in ended]
        try:
            ec2.terminate_instances(InstanceIds=ids)
            ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=TERMINATION_WAIT)
            sweep.removed += [f"instance {i['InstanceId']} ({tags_of(i)[TAG_RUN]})" for i in ended]
        except (ClientError, WaiterError) as exc:
            terminated = False
            sweep.failed.append(f"instances {', '.join(ids)}: {_error(exc)}; their security groups stay")
    groups = ec2.describe_security_groups(Filters=_filters(scope))["SecurityGroups"]
    for group in groups:
        tags = tags_of(group)
        if not (group["GroupName"] == tags.get(TAG_RUN) and group.get("Description") == GROUP_DESCRIPTION
                and run_is_over(tags, held_lock, now)):
            continue
        if not terminated:
            sweep.failed.append(f"security group {group['GroupId']} ({group['GroupName']}): kept until its "
                                "instance is gone")
            continue
        try:
            ec2.delete_security_group(GroupId=group["GroupId"])
            sweep.removed.append(f"security group {group['GroupId']} ({group['GroupName']})")
        except ClientError as exc:
            sweep.failed.append(f"security group {group['GroupId']}: {_error(exc)}")
    for pair in ec2.describe_key_pairs(Filters=_filters(scope))["KeyPairs"]:
        if not run_is_over(tags_of(pair), held_lock, now):
            continue
        try:
            ec2.delete_key_pair(KeyName=pair["KeyName"])  # moto 5.2 ignores KeyPairId here
            sweep.removed.append(f"key pair {pair['KeyName']}")
        except ClientError as exc:
            sweep.failed.append(f"key pair {pair['KeyName']}: {_error(exc)}")
    return sweep


def build_containers(scope: Mapping[str, str]) -> list[dict[str, Any]]:
    """This machine's build containers (and boot probes) of scope: `podman ps -a` as JSON."""
    filters = [f"label={ROLE_LABEL}={BUILD_HOST_ROLE}",
               *(f"label={run_owner.LABEL_PREFIX}{key}={value}" for key, value in scope.items())]
    listed = podman("ps", "-a", "--format", "json", *(arg for f in filters for arg in ("--filter", f))).stdout
    containers: list[dict[str, Any]] = json.loads(listed or "[]")
    return containers


def sweep_containers(scope: Mapping[str, str], held_lock: Path, now: datetime) -> Sweep:
    """Remove the ended runs' build containers and boot probes. A container is one only when its
    name is its run's (the AMI's local image inherits the build container's labels, so containers
    booted from it carry them too: those are the local cloud's instances, never swept)."""
    sweep = Sweep()
    for container in build_containers(scope):
        tags = tags_of_labels(container.get("Labels") or {})
        if any(tags.get(key) != value for key, value in scope.items()) or not run_is_over(tags, held_lock, now):
            continue
        run = tags[TAG_RUN]
        for name in container.get("Names", []):
            if name not in (run, run + BOOT_PROBE_SUFFIX):
                continue
            result = podman("rm", "-f", "-t", "0", name, check=False)
            if result.returncode == 0:
                sweep.removed.append(f"container {name}")
            else:
                sweep.failed.append(f"container {name}: {' '.join(result.stderr.split())}")
    return sweep


def sweep_key_files(state: Path, project: str, env: str) -> Sweep:
    """Private keys and playbook variables of earlier builds of env in this state directory: each
    build deletes its own when it ends, so these are a killed run's (the caller holds env's lock)."""
    sweep = Sweep()
    workdirs = [d for d in (state / "bake").glob(f"{env}-*") if re.fullmatch(rf"{env}-\d{{14}}", d.name)]
    for path in (workdir / name for workdir in workdirs for name in KEY_FILES):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            sweep.failed.append(f"file {path}: {exc}")
            continue
        sweep.removed.append(f"file {path}")
    for scratch in state.glob(f"{project}-bake-{env}-*"):
        if scratch.is_dir():
            shutil.rmtree(scratch, ignore_errors=True)
            sweep.removed.append(f"directory {scratch}")
    return sweep


def sweep(ec2: Any, local: bool, owner: run_owner.RunOwner, state: Path, held_lock: Path, now: datetime) -> Sweep:
    """Everything above for owner's project, app and environment (containers in local mode only).
    A failed lookup is reported, not raised: leftovers never stop the bake itself."""
    found = Sweep()
    try:
        found.add(sweep_cloud(ec2, owner.scope(), held_lock, now))
    except (BotoCoreError, ClientError) as exc:
        found.failed.append(f"cloud resources: {_error(exc)}")
    if local:
        try:
            found.add(sweep_containers(owner.scope(), held_lock, now))
        except (BuildHostError, subprocess.SubprocessError, ValueError) as exc:  # ValueError: podman's JSON
            found.failed.append(f"build containers: {_error(exc)}")
    found.add(sweep_key_files(state, owner.project, owner.env))
    return found
