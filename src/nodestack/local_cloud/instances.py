"""The local cloud's instances as Podman containers: one systemd container per EC2 instance
whose AMI has a local image, on a Podman network of the local cloud's own, with its user
data and meta-data as a cloud-init NoCloud seed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from nodestack.local_cloud import ami_images, cloud_init
from nodestack.local_cloud.podman_cli import CLOUD_LABEL, PodmanError, cloud_network, podman

__all__ = ["CLOUD_LABEL", "INSTANCE_LABEL", "Container", "InstanceRuntime", "PodmanError", "podman"]

INSTANCE_LABEL = "io.nodestack.instance-id"
IMAGE_RECHECK_SECONDS = 30.0


@dataclass(frozen=True)
class Container:
    name: str
    instance_id: str
    running: bool
    address: str | None  # on the cloud's network, from Podman; None when not running


class InstanceRuntime:
    """Containers and network of one local cloud, named after its id (the endpoint's port)."""

    def __init__(self, cloud_id: str, seeds: Path) -> None:
        self.cloud_id = cloud_id
        self.network = cloud_network(cloud_id)
        self.seeds = seeds
        self._images: dict[str, tuple[bool, float]] = {}

    def image(self, ami_id: str) -> str:
        """The AMI's local image, committed by the bake (ami_images)."""
        return ami_images.ami_image(self.cloud_id, ami_id)

    def container_name(self, instance_id: str) -> str:
        return f"nodestack-{self.cloud_id}-{instance_id}"

    def has_image(self, ami_id: str) -> bool:
        """Whether the AMI has a local image; a miss is looked up again after a while (a bake
        registers its AMI before it commits the image)."""
        known = self._images.get(ami_id)
        if known and (known[0] or time.monotonic() - known[1] < IMAGE_RECHECK_SECONDS):
            return known[0]
        exists = podman("image", "exists", self.image(ami_id), check=False).returncode == 0
        self._images[ami_id] = (exists, time.monotonic())
        return exists

    def ensure_network(self) -> None:
        if podman("network", "exists", self.network, check=False).returncode != 0:
            podman("network", "create", "--label", f"{CLOUD_LABEL}={self.cloud_id}", self.network)

    def containers(self) -> dict[str, Container]:
        """This cloud's containers by instance id."""
        listed = podman("ps", "-a", "--filter", f"label={CLOUD_LABEL}={self.cloud_id}",
                        "--format", "json", timeout=30)
        found: dict[str, Container] = {}
        for item in json.loads(listed.stdout or "[]"):
            instance_id = (item.get("Labels") or {}).get(INSTANCE_LABEL)
            if instance_id:
                running = item.get("State") == "running"
                found[instance_id] = Container(item["Names"][0], instance_id, running,
                                               self.address(item["Names"][0]) if running else None)
        return found

    def address(self, name: str) -> str | None:
        fmt = '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % self.network
        result = podman("inspect", "--format", fmt, name, check=False, timeout=30)
        return result.stdout.strip() or None if result.returncode == 0 else None

    def gateway(self) -> str:
        """The network's gateway address: the host's side of the bridge."""
        self.ensure_network()
        found = podman("network", "inspect", "--format", "{{range .Subnets}}{{.Gateway}} {{end}}", self.network)
        addresses = found.stdout.split()
        if not addresses:
            raise PodmanError(f"network {self.network} has no gateway address")
        return addresses[0]

    def launch(self, meta: cloud_init.InstanceMetadata, ami_id: str, user_data: bytes,
               mounts: list[tuple[Path, str]] | None = None) -> None:
        """Start the instance's container; `mounts` are (host file, path inside) pairs, read-only."""
        seed = self.seeds / meta.instance_id
        cloud_init.write_seed(seed, meta, user_data)
        self.ensure_network()
        volumes = [arg for host, inside in mounts or [] for arg in ("-v", f"{host}:{inside}:ro")]
        podman("run", "-d", "--name", self.container_name(meta.instance_id), "--hostname", meta.hostname,
               "--network", self.network, "--systemd=always",
               "--label", f"{CLOUD_LABEL}={self.cloud_id}", "--label", f"{INSTANCE_LABEL}={meta.instance_id}",
               "-v", f"{seed}:{cloud_init.SEED_MOUNT}:ro", *volumes,
               self.image(ami_id), "/sbin/init")

    def stop(self, instance_id: str) -> None:
        podman("stop", "-t", "10", self.container_name(instance_id), check=False)

    def start(self, instance_id: str) -> None:
        podman("start", self.container_name(instance_id), check=False)

    def restart(self, instance_id: str) -> None:
        podman("restart", "-t", "10", self.container_name(instance_id), check=False)

    def remove(self, instance_id: str) -> None:
        podman("rm", "-f", "-t", "5", self.container_name(instance_id), check=False)
        seed = self.seeds / instance_id
        for child in seed.glob("*"):
            child.unlink()
        if seed.exists():
            seed.rmdir()

    def remove_all(self) -> None:
        """Every container and the network of this cloud (also what a crashed run left)."""
        listed = podman("ps", "-aq", "--filter", f"label={CLOUD_LABEL}={self.cloud_id}", check=False)
        ids = listed.stdout.split()
        if ids:
            podman("rm", "-f", "-t", "5", *ids, check=False)
        if podman("network", "exists", self.network, check=False).returncode == 0:
            podman("network", "rm", "-f", self.network, check=False)

    def remove_with_images(self) -> list[str]:
        """remove_all(), then the images of this cloud's AMIs (also a crashed run's): its AMIs end
        with its endpoint. The images removed."""
        self.remove_all()
        return ami_images.remove_cloud_images(self.cloud_id)
