"""The local images of a local cloud's AMIs, named after the cloud that holds the AMIs.

An AMI lives in the endpoint's memory and ends with it; its image (about 1.2 GB) would stay in
Podman's storage for good: every bake of every earlier cloud filled the disk until builds failed.
So an image is named after its cloud (`localhost/nodestack-ami-<cloud id>:<ami id>`, the id being
the endpoint's port), a cloud removes its images when it stops and when it starts (a crash on
that port), and a starting cloud removes the images of clouds that have ended."""

from __future__ import annotations

import json
import logging
import re

from nodestack.local_cloud import server
from nodestack.local_cloud.podman_cli import CLOUD_LABEL, network_cloud, podman

LOG = logging.getLogger(__name__)
REPOSITORY = "localhost/nodestack-ami"
# The `-<cloud id>` part is optional: images named before clouds named them have none, and no
# cloud can launch them any more.
_NAME = re.compile(rf"^{re.escape(REPOSITORY)}(?:-(?P<cloud>\d+))?:(?P<ami>ami-[0-9a-f]+)$")


def ami_image(cloud_id: str, ami_id: str) -> str:
    return f"{REPOSITORY}-{cloud_id}:{ami_id}"


def listed() -> dict[str, str]:
    """Every AMI image in Podman's storage: name to the id of its cloud ('' for the old names)."""
    result = podman("images", "--format", "json", check=False, timeout=60)
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


def clouds_with_resources() -> set[str]:
    """Ids of the clouds that have containers or a network in Podman: running, or crashed and not
    yet cleaned up (their own next start or `down` removes their images too)."""
    found: set[str] = set()
    containers = podman("ps", "-a", "--filter", f"label={CLOUD_LABEL}", "--format", "json", check=False, timeout=60)
    for item in json.loads(containers.stdout or "[]") if containers.returncode == 0 else []:
        found.add(str((item.get("Labels") or {}).get(CLOUD_LABEL, "")))
    networks = podman("network", "ls", "--format", "{{.Name}}", check=False, timeout=60)
    found |= {network_cloud(name) for name in networks.stdout.split()}
    return found - {""}


def cloud_running(cloud_id: str, tries: int = 2) -> bool:
    """Whether the cloud of that id (its port on loopback) answers its endpoint's ping (asked
    twice: a busy machine may be slow to answer once)."""
    return any(server.answers(f"http://{server.HOST}:{cloud_id}", timeout=5.0) for _ in range(tries))


def remove(names: list[str]) -> list[str]:
    """Remove these images, each only if no container uses it (an instance of a running cloud
    keeps its image, as on AWS a deregistered AMI's instances run on); the names removed."""
    removed = []
    for name in names:
        result = podman("rmi", name, check=False)
        if result.returncode == 0:
            removed.append(name)
        else:
            LOG.info("image %s kept: %s", name, result.stderr.strip()[-200:])
    return removed


def of_cloud(cloud_id: str) -> list[str]:
    """The images of this cloud's AMIs."""
    return [name for name, owner in listed().items() if owner == cloud_id]


def remove_cloud_images(cloud_id: str) -> list[str]:
    """The images of this cloud's AMIs: its AMIs end with its endpoint."""
    return remove(of_cloud(cloud_id))


def remove_orphans(own_id: str) -> list[str]:
    """Images of clouds that have ended (no endpoint answering, no container or network left) and
    of the old names; a cloud that only seems gone keeps its images."""
    owners = listed()
    others = set(owners.values()) - {"", own_id}
    kept = clouds_with_resources() & others
    kept |= {cloud for cloud in others - kept if cloud_running(cloud)}
    removed = remove([name for name, owner in owners.items() if owner != own_id and owner not in kept])
    if removed:
        LOG.warning("removed the images of local clouds that have ended: %s", ", ".join(removed))
    return removed
