"""The local base image: built once per recipe, boots systemd, makes its own SSH host keys."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

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
def boot(image: str) -> Iterator[Callable[[], str]]:
    """Boot a container of the image with systemd, until it is running; removed afterwards."""
    names: list[str] = []

    def booted() -> str:
        name = f"nodestack-test-{uuid.uuid4().hex[:8]}"
        names.append(name)
        podman("run", "-d", "--name", name, "--systemd=always", image, "/sbin/init")
        state = ""
        for _ in range(60):
            state = podman("exec", name, "systemctl", "is-system-running", check=False)
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        assert state == "running", podman("exec", name, "systemctl", "--failed", check=False)
        return name

    yield booted
    for name in names:
        podman("rm", "-f", name, check=False)


def test_image_carries_the_recipe_digest_and_a_second_build_is_cached(image: str) -> None:
    assert base_image.cached_digest(image) == base_image.Recipe().digest()
    assert base_image.build() is False


def test_container_boots_systemd_with_sshd_and_fresh_host_keys(image: str, boot: Callable[[], str]) -> None:
    # the image holds no host key: every instance of it makes its own at first boot
    keys = podman("run", "--rm", image, "sh", "-c", "ls /etc/ssh/ssh_host_* 2>/dev/null || true")
    assert keys == ""
    first, second = boot(), boot()
    fingerprints = set()
    for name in (first, second):
        assert podman("exec", name, "systemctl", "is-active", "ssh") == "active"
        fingerprints.add(podman("exec", name, "ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub"))
    assert len(fingerprints) == 2 and all("ED25519" in f for f in fingerprints), fingerprints
    assert podman("exec", first, "python3", "-c", "import apt; print('ok')") == "ok"
