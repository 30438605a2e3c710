"""packer/scripts/finalize-image.sh cleans a build host and fails the bake on an incomplete image."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from nodestack.local_cloud import base_image
from nodestack.bake.build_host import podman
from tests.conftest import REPO

SCRIPT = REPO / "packer/scripts/finalize-image.sh"


@pytest.fixture
def host() -> Iterator[str]:
    """A bare build host: base image, a build user with a key, host keys, some history."""
    name = f"nodestack-test-finalize-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, base_image.IMAGE, "sleep", "600")
    podman("exec", name, "sh", "-c", "useradd -m admin && mkdir -p /home/admin/.ssh /root/.ssh"
           " && echo key > /home/admin/.ssh/authorized_keys && echo key > /root/.ssh/authorized_keys"
           " && ssh-keygen -q -A && echo 'ls' > /root/.bash_history")
    yield name
    podman("rm", "-f", "-t", "0", name, check=False)


def run_finalize(name: str) -> subprocess.CompletedProcess[str]:
    return podman("exec", "-i", "-e", "BUILD_USER=admin", name, "bash", "-s", check=False, stdin=SCRIPT.read_text())


def test_incomplete_image_fails_naming_what_is_missing(host: str) -> None:
    result = run_finalize(host)
    assert result.returncode == 1
    assert "finalize-image: required command node is missing" in result.stderr


def test_keys_and_history_are_removed_before_the_checks(host: str) -> None:
    run_finalize(host)
    left = podman("exec", host, "sh", "-c", "ls /etc/ssh/ssh_host_* /root/.ssh/authorized_keys "
                  "/home/admin/.ssh/authorized_keys /root/.bash_history 2>/dev/null; cat /etc/machine-id",
                  check=False).stdout
    assert left.strip() == ""
