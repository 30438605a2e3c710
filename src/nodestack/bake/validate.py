"""Validation after Packer (the image checks ran inside the build): locally, a boot of the
committed build container to prove the app comes up from the image alone."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nodestack.bake.build_host import podman
from nodestack.bake.settings import AppCheck
from nodestack.bake.target import Target
from nodestack.local_cloud import ami_images
from nodestack.paths import REPO_ROOT

EMPTY_CONFIG = REPO_ROOT / "packer" / "tests" / "empty-config.conf"

# The health check's status inside the container (an error status is an answer too).
_STATUS = ("import sys, urllib.error, urllib.request\n"
           "try: print(urllib.request.urlopen(sys.argv[1], timeout=3).status)\n"
           "except urllib.error.HTTPError as e: print(e.code)")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str


def answers_health_check(container: str, app: AppCheck, timeout_s: float) -> bool:
    """Whether the app's health check answers its healthy status inside the container, asked
    until it does or timeout_s passes."""
    url = f"http://127.0.0.1:{app.port}{app.health_path}"
    deadline = time.monotonic() + timeout_s
    while True:
        result = podman("exec", container, "python3", "-c", _STATUS, url, check=False)
        if result.returncode == 0 and result.stdout.strip() == str(app.health_status):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def empty_configuration(config_unit: str) -> list[str]:
    """`podman run` arguments that start the app with an empty configuration: a container booted
    here has no instance profile to read its parameters with (packer/tests/empty-config.conf)."""
    return ["-v", f"{EMPTY_CONFIG}:/etc/systemd/system/{config_unit}.d/50-bake-check.conf:ro"] if config_unit else []


def commit_and_boot(container: str, image: str, app: AppCheck, timeout_s: float = 120) -> Outcome:
    """Commit the build host as the AMI's local image, boot a fresh container from it, and
    wait for the health check: the app must come up on boot with nobody running anything."""
    podman("commit", "--quiet", container, image, timeout=300)
    probe = f"{container}-boot"
    podman("run", "-d", "--name", probe, "--systemd=always", *empty_configuration(app.config_unit), image,
           "/sbin/init")
    check = f"{app.health_path} on port {app.port} answering {app.health_status}"
    try:
        if answers_health_check(probe, app, timeout_s):
            revision = podman("exec", "--user", app.user, probe, "git", "-C", app.app_dir, "rev-parse", "--short",
                              "HEAD", check=False).stdout.strip()
            return Outcome(True, f"booted {image}: {check}, app at {revision or 'an unknown revision'}")
        journal = podman("exec", probe, "journalctl", "-u", app.service, "--no-pager", "-n", "20", "-o", "cat",
                         check=False).stdout
        return Outcome(False, f"a container booted from {image} did not serve {check} within {timeout_s:.0f}s:\n"
                              f"{journal}")
    finally:
        podman("rm", "-f", "-t", "0", probe, check=False)


def remove_local_image(target: Target, ami_id: str) -> None:
    """The image of an AMI deregistered (a failed validation, pruning), on the local cloud only."""
    if target.local:
        ami_images.remove([target.local_image(ami_id)])


