"""Where the project keeps its files: repository root, state directory, Podman config."""

from __future__ import annotations

import os
import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """Directory for pid files, logs and build scratch; override with NODESTACK_STATE_DIR."""
    path = Path(os.environ.get("NODESTACK_STATE_DIR", REPO_ROOT / ".state"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def containers_conf() -> Path:
    """The project's Podman configuration (runc, cgroupfs, explicit ulimits)."""
    return REPO_ROOT / "config" / "containers.conf"


def podman_env() -> dict[str, str]:
    """Environment for podman calls: the project's containers.conf, unless the user set one."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(containers_conf()))
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
