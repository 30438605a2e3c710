"""Which bake run made a resource, and whether that run is over: the tags (EC2) and labels
(Podman) a bake puts on everything it creates, so that the next bake of the environment can
remove what a killed one left, and nothing else.

A run is over, provably, when its own expiry has passed (its Packer timeout plus a margin), or
when it ran on this machine under an environment lock that nobody holds now (or that the
caller holds). The lock alone proves nothing about another machine: a bake on a laptop and the
nightly job may run the same environment in one account at the same time."""

from __future__ import annotations

import fcntl
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from nodestack.ssm_lock import boot_id

SCOPE_TAGS = ("Project", "App", "Environment")  # as Packer tags the AMI and its build instance
TAG_RUN, TAG_HOST, TAG_EXPIRES = "BakeRun", "BakeHost", "BakeExpires"
LABEL_PREFIX = "io.nodestack."  # Podman labels carry the same keys under the project's prefix
# After Packer's timeout: validation, promotion, pruning, and the cleanup (Packer is stopped with
# SIGINT and waits for its instance to terminate, then the bake deletes its security group).
EXPIRY_MARGIN = timedelta(hours=1)
_TAG_VALUE_MAX = 256  # EC2's limit on a tag value
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_TIME_FORMAT)


def machine() -> str:
    """This boot of this machine, `<hostname>@<boot id>`: hostnames repeat (containers, CI
    runners), and a lock file of another machine of the same name proves nothing here."""
    boot = boot_id()[:8]
    return f"{socket.gethostname()}@{boot}" if boot else socket.gethostname()


def host_id(lock: Path) -> str:
    """This machine and the environment lock a run holds: `<machine>:<lock path>`, or the
    machine alone when the path would not fit a tag (such a run ends by its expiry only)."""
    value = f"{machine()}:{lock.resolve()}"
    return value if len(value) <= _TAG_VALUE_MAX else machine()


@dataclass(frozen=True)
class RunOwner:
    """One bake run of one environment: what it tags and labels its resources with."""

    project: str
    app: str
    env: str
    run: str  # the build's name: its container, its key pair
    host: str  # host_id()
    expires: str  # UTC ISO time after which the run is over, whatever its host says

    @classmethod
    def start(cls, project: str, app: str, env: str, run: str, lock: Path, timeout_s: float,
              now: datetime) -> RunOwner:
        return cls(project, app, env, run, host_id(lock), utc_iso(now + timedelta(seconds=timeout_s) + EXPIRY_MARGIN))

    def scope(self) -> dict[str, str]:
        """The tags every run of this project, app and environment shares."""
        return dict(zip(SCOPE_TAGS, (self.project, self.app, self.env), strict=True))

    def tags(self) -> dict[str, str]:
        return {**self.scope(), TAG_RUN: self.run, TAG_HOST: self.host, TAG_EXPIRES: self.expires}

    def tag_list(self) -> list[dict[str, str]]:
        return [{"Key": key, "Value": value} for key, value in self.tags().items()]

    def label_args(self) -> list[str]:
        """`podman run` arguments labelling a container with the run's tags."""
        return [arg for key, value in self.tags().items() for arg in ("--label", f"{LABEL_PREFIX}{key}={value}")]

    def packer_variables(self) -> dict[str, str]:
        """The template's bake_* variables: Packer tags its build instance with them (run_tags)."""
        return {"bake_run": self.run, "bake_host": self.host, "bake_expires": self.expires}


def tags_of_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """A container's labels as the tags they carry (label_args' inverse)."""
    return {key[len(LABEL_PREFIX):]: value for key, value in labels.items() if key.startswith(LABEL_PREFIX)}


def run_is_over(tags: Mapping[str, str], held_lock: Path, now: datetime) -> bool:
    """Whether the run that tagged a resource is over (see the module's doc). A resource without
    the run's expiry was not made by a bake that says when it ends: never provably over."""
    try:
        expires = datetime.strptime(tags[TAG_EXPIRES], _TIME_FORMAT).replace(tzinfo=timezone.utc)
    except (KeyError, ValueError):
        return False
    if now >= expires:
        return True
    host, _, lock = tags.get(TAG_HOST, "").partition(":")
    if host != machine() or not lock:
        return False
    return lock == str(held_lock.resolve()) or _nobody_holds(Path(lock))


def _nobody_holds(lock: Path) -> bool:
    """Whether no process holds the lock file (a bake holds it with flock while it runs). A lock
    file that is gone proves nothing: its state directory was removed, perhaps under a live run."""
    try:
        handle = lock.open("r")
    except OSError:
        return False
    with handle:  # closing releases the probe's own lock at once
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True
