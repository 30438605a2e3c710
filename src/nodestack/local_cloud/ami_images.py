"""The local images of a local cloud's AMIs, named after the cloud that holds the AMIs.

An AMI lives in the endpoint's memory and ends with it; its image (about 1.2 GB) would stay in
Podman's storage for good: every bake of every earlier cloud filled the disk until builds failed.
So an image is named after its cloud (`localhost/nodestack-ami-<cloud id>:<ami id>`, the id being
the endpoint's port), a cloud removes its images when it stops and when it starts (a crash on
that port), and a starting cloud removes the images of clouds that no longer answer."""

from __future__ import annotations

import json
import logging
import re
import subprocess

from nodestack.local_cloud import server
from nodestack.paths import podman_env

LOG = logging.getLogger(__name__)
REPOSITORY = "localhost/nodestack-ami"
# Before images were named after their cloud: nothing can launch them any more.
_NAME = re.compile(rf"^{re.escape(REPOSITORY)}(?:-(?P<cloud>\d+))?:(?P<ami>ami-[0-9a-f]+)$")


def ami_image(cloud_id: str, ami_id: str) -> str:
    return f"{REPOSITORY}-{cloud_id}:{ami_id}"


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def listed() -> dict[str, str]:
    """Every AMI image in Podman's storage: name to the id of its cloud ('' for the old names)."""
    result = _podman("images", "--format", "json", timeout=60)
    if result.returncode != 0:
        LOG.warning("podman images failed: %s", result.stderr.strip()[-300:])
        return {}
    found: dict[str, str] = {}
    for image in json.loads(result.stdout or "[]"):
        for name in image.get("Names") or []:
            match = _NAME.match(name)
            if match:
                found[name] = match["cloud"] or ""
    return found


def answers(cloud_id: str, tries: int = 2) -> bool:
    """Whether the cloud of that id (its port on loopback) is running: its endpoint's ping
    answers (asked twice: a busy machine may be slow to answer once)."""
    return any(server.answers(f"http://{server.HOST}:{cloud_id}", timeout=5.0) for _ in range(tries))


def remove(names: list[str]) -> list[str]:
    """Remove these images, each only if no container uses it (an instance of a running cloud
    keeps its image, as on AWS a deregistered AMI's instances run on); the names removed."""
    removed = []
    for name in names:
        result = _podman("rmi", name)
        if result.returncode == 0:
            removed.append(name)
        else:
            LOG.info("image %s kept: %s", name, result.stderr.strip()[-200:])
    return removed


def remove_cloud_images(cloud_id: str) -> list[str]:
    """The images of this cloud's AMIs: its AMIs end with its endpoint."""
    return remove([name for name, owner in listed().items() if owner == cloud_id])


def remove_orphans(own_id: str) -> list[str]:
    """Images of clouds that no longer run (and of the old names), asked once per cloud id."""
    owners = listed()
    alive = {cloud for cloud in set(owners.values()) - {"", own_id} if answers(cloud)}
    return remove([name for name, owner in owners.items() if owner != own_id and owner not in alive])
