"""The local base image: built once per recipe, boots systemd, makes its own SSH host keys."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from nodestack.local_cloud import base_image
from nodestack.paths import podman_env

pytestmark = pytest.mark.slow


def podman(*args: str, check: bool = True) -> str:
    return subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                          check=check, timeout=120).stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    base_image.build()
    return base_image.IMAGE


@pytest.fixture
def booted(image: str) -> Iterator[str]:
    name = f"nodestack-test-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "--systemd=always", image, "/sbin/init")
    try:
        yield name
    finally:
        podman("rm", "-f", name, check=False)


def test_image_carries_the_recipe_digest_and_a_second_build_is_cached(image: str) -> None:
    assert base_image.cached_digest(image) == base_image.Recipe().digest()
    assert base_image.build() is False


def test_container_boots_systemd_with_sshd_and_fresh_host_keys(booted: str) -> None:
    state = ""
    for _ in range(60):
        state = podman("exec", booted, "systemctl", "is-system-running", check=False)
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    assert state == "running", podman("exec", booted, "systemctl", "--failed", check=False)
    assert podman("exec", booted, "systemctl", "is-active", "ssh") == "active"
    assert podman("exec", booted, "sh", "-c", "ls /etc/ssh/ssh_host_ed25519_key")
    assert podman("exec", booted, "python3", "-c", "import apt; print('ok')") == "ok"
