"""Podman as the local cloud runs it: the command with the project's settings, and the label and
network by which a cloud's containers are known (its id is its endpoint's port)."""

from __future__ import annotations

import subprocess

from nodestack.paths import podman_env

CLOUD_LABEL = "io.nodestack.cloud"


class PodmanError(RuntimeError):
    pass


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise PodmanError(f"podman {' '.join(args[:2])} failed: {result.stderr.strip()[-400:]}")
    return result


_NETWORK_PREFIX = "nodestack-"


def cloud_network(cloud_id: str) -> str:
    return f"{_NETWORK_PREFIX}{cloud_id}"


def network_cloud(network: str) -> str:
    """The id of the cloud whose network this is ('' for another network)."""
    return network.removeprefix(_NETWORK_PREFIX) if network.startswith(_NETWORK_PREFIX) else ""
