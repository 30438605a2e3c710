"""packer/scripts/finalize-image.sh cleans a build host and fails the bake on an incomplete image."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from nodestack.bake.build_host import podman
from nodestack.local_cloud import base_image
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
    return podman("exec", "-i", "-e", "BUILD_USER=admin", "-e", "APP_SERVICE=nodeapp", name, "bash", "-s",
                  check=False, stdin=SCRIPT.read_text())


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


def test_build_leftovers_are_removed_before_the_checks(host: str) -> None:
    """Ansible's remote files, the local build's sudo grant and the build's journal."""
    podman("exec", host, "sh", "-c", "mkdir -p /root/.ansible/tmp /home/admin/.ansible/tmp /var/log/journal/0123abcd"
           " && echo x > /var/log/journal/0123abcd/system.journal && echo 'admin ALL=(ALL:ALL) NOPASSWD: ALL'"
           " > /etc/sudoers.d/90-build")
    result = run_finalize(host)
    assert "required command node is missing" in result.stderr  # got past the leftover checks
    left = podman("exec", host, "sh", "-c", "ls -d /root/.ansible /home/admin/.ansible /etc/sudoers.d/90-build"
                  " 2>/dev/null; find /var/log/journal -type f", check=False).stdout
    assert left.strip() == ""


def app_checkout(name: str, mode: str) -> None:
    """What the roles leave when app_source keeps its credentials: a deploy key and the checkout's ssh command."""
    podman("exec", name, "sh", "-c",
           f"mkdir -p /etc/default /srv/nodeapp/app/.git /var/lib/nodeapp-deploy/.ssh"
           f" && echo AUTO_START_MODE={mode} > /etc/default/nodeapp"
           " && printf '[Service]\\nWorkingDirectory=/srv/nodeapp/app\\n' > /etc/systemd/system/nodeapp.service"
           " && printf '[core]\\n\\tsshCommand = ssh -i /var/lib/nodeapp-deploy/.ssh/deploy_key\\n'"
           " > /srv/nodeapp/app/.git/config"
           " && echo '-----BEGIN OPENSSH PRIVATE KEY-----' > /var/lib/nodeapp-deploy/.ssh/deploy_key")


def test_baked_image_with_the_deploy_key_fails(host: str) -> None:
    app_checkout(host, "baked")
    result = run_finalize(host)
    assert result.returncode == 1
    assert "finalize-image: left in the image:" in result.stderr
    assert "/var/lib/nodeapp-deploy/.ssh/deploy_key" in result.stderr
    assert "/srv/nodeapp/app/.git/config (core.sshCommand)" in result.stderr


def test_pull_image_keeps_the_deploy_key_its_fetch_unit_needs(host: str) -> None:
    app_checkout(host, "pull")
    result = run_finalize(host)
    assert "left in the image" not in result.stderr
    assert "required command node is missing" in result.stderr
