"""Validation after Packer (the image checks ran inside the build): locally, a boot of the
committed build container to prove the app comes up from the image alone."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nodestack.bake.build_host import podman
from nodestack.local_cloud.instances import ami_image

_HEALTH = ("import urllib.request, json; "
           "print(json.loads(urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=3).read())['version'])")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str


def health_version(container: str, timeout_s: float) -> str | None:
    """The version the app's /health reports inside the container, asked until it answers;
    None when it did not within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while (result := podman("exec", container, "python3", "-c", _HEALTH, check=False)).returncode != 0:
        if time.monotonic() > deadline:
            return None
        time.sleep(1)
    return result.stdout.strip()


def commit_and_boot(container: str, ami_id: str, timeout_s: float = 120) -> Outcome:
    """Commit the build host as the AMI's local image, boot a fresh container from it, and
    wait for /health: the app must come up on boot with nobody running anything."""
    image = ami_image(ami_id)
    podman("commit", "--quiet", container, image, timeout=300)
    probe = f"{container}-boot"
    podman("run", "-d", "--name", probe, "--systemd=always", image, "/sbin/init")
    try:
        version = health_version(probe, timeout_s)
        if version is not None:
            return Outcome(True, f"booted {image}: /health 200, version {version}")
        journal = podman("exec", probe, "journalctl", "-u", "nodeapp", "--no-pager", "-n", "20", "-o", "cat",
                         check=False).stdout
        return Outcome(False, f"a container booted from {image} did not serve /health within {timeout_s:.0f}s:\n{journal}")
    finally:
        podman("rm", "-f", "-t", "0", probe, check=False)


def remove_local_image(ami_id: str) -> None:
    podman("rmi", "-f", ami_image(ami_id), check=False)


