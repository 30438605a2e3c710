"""Start, stop and inspect the local AWS endpoint (a moto server on loopback)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodestack.local_cloud import identities
from nodestack.paths import containers_conf, free_port, state_dir

DEFAULT_PORT = 5055
DEFAULT_REGION = "us-east-1"
HOST = "127.0.0.1"
PING_PATH = "/_nodestack/ping"  # answered at once by the endpoint (endpoint.with_ping)
_MARKER = "nodestack.local_cloud.endpoint"


class LocalCloudError(RuntimeError):
    """A failure the user can act on; the message says what to do."""


@dataclass(frozen=True)
class Endpoint:
    pid: int
    port: int
    request_log: Path
    dns_port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def default_port() -> int:
    raw = os.environ.get("NODESTACK_LOCAL_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise LocalCloudError(f"NODESTACK_LOCAL_PORT={raw!r} is not a TCP port: set it to a number 1-65535")
    return int(raw)


def _pid_file() -> Path:
    return state_dir() / "local-cloud.json"


def log_file() -> Path:
    return state_dir() / "local-cloud.log"


def request_log_file() -> Path:
    return state_dir() / "local-cloud-requests.jsonl"


def data_plane_dir() -> Path:
    return state_dir() / "data-plane"


def data_plane_status() -> dict[str, Any] | None:
    """The data plane's last snapshot (written every second by the endpoint), or None."""
    try:
        return json.loads((data_plane_dir() / "status.json").read_text())
    except (OSError, ValueError):
        return None


def _is_ours(pid: int) -> bool:
    """True if pid is alive and is the endpoint process this project started."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return _MARKER in cmdline


def _recorded() -> Endpoint | None:
    try:
        data = json.loads(_pid_file().read_text())
        return Endpoint(pid=int(data["pid"]), port=int(data["port"]),
                        request_log=Path(data.get("request_log", request_log_file())),
                        dns_port=int(data.get("dns_port", 0)))
    except (OSError, ValueError, KeyError):
        return None


def current() -> Endpoint | None:
    """The running endpoint recorded in the state directory, or None (stale records are removed)."""
    endpoint = _recorded()
    if endpoint is None:
        return None
    if _is_ours(endpoint.pid):
        return endpoint
    _pid_file().unlink(missing_ok=True)
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}{PING_PATH}", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def up(port: int | None = None, wait_seconds: float = 30.0, fixes: bool = True,
       data_plane: bool = True, enforce_iam: bool = False) -> tuple[Endpoint, bool]:
    """Start the endpoint unless ours already runs; returns (endpoint, started_now).

    With the data plane (and the fixes it needs), instances run as containers, load
    balancers as HAProxy, and a DNS server answers the hosted zones. With enforce_iam, every
    request is authorised against its caller's IAM policies (local_cloud/identities.py)."""
    port = default_port() if port is None else port
    running = current()
    if running is not None:
        if running.port != port:
            raise LocalCloudError(
                f"the local cloud already runs on port {running.port}, not {port}: "
                f"use it, or stop it first with `nodestack local down`"
            )
        if enforce_iam != identities.enforcing():
            raise LocalCloudError(
                f"the local cloud already runs {'with' if identities.enforcing() else 'without'} IAM enforced: "
                f"stop it first with `nodestack local down` to start it {'with' if enforce_iam else 'without'}"
            )
        return running, False
    identities.remove()
    if not _port_free(port):
        raise LocalCloudError(
            f"port {port} on {HOST} is already in use by another process: "
            f"free it, or pick another port with --port or NODESTACK_LOCAL_PORT"
        )
    cmd = [sys.executable, "-m", _MARKER, "--host", HOST, "--port", str(port),
           "--request-log", str(request_log_file())]
    dns_port = 0
    if not fixes:
        cmd.append("--no-fixes")
    elif data_plane:
        dns_port = free_port()
        cmd += ["--data-plane", str(data_plane_dir()), "--dns-port", str(dns_port)]
    with log_file().open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    endpoint = Endpoint(pid=proc.pid, port=port, request_log=request_log_file(), dns_port=dns_port)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalCloudError(f"the local endpoint exited with code {proc.returncode}; see {log_file()}")
        if answers(endpoint.url):
            try:
                identities.set_up(endpoint.url, DEFAULT_REGION, enforce_iam)
            except Exception:
                _terminate(proc.pid)
                raise
            record = {"pid": proc.pid, "port": port, "request_log": str(endpoint.request_log), "dns_port": dns_port}
            _pid_file().write_text(json.dumps(record))
            return endpoint, True
        time.sleep(0.1)
    _terminate(proc.pid)
    raise LocalCloudError(f"the local endpoint did not answer on {endpoint.url} within {wait_seconds:.0f}s; "
                          f"see {log_file()}")


def _terminate(pid: int, grace: float = 5.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # not our child: poll /proc instead
            if not Path(f"/proc/{pid}").exists():
                return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def down() -> Endpoint | None:
    """Stop the endpoint this project started (by its recorded pid) and remove whatever its
    data plane left (containers, network, HAProxy), also after a crash; None if nothing ran."""
    recorded = _recorded()
    running = current()
    if running is not None:
        _terminate(running.pid, grace=60.0)  # the data plane removes its containers first
    if recorded is not None:
        _remove_data_plane(recorded.port)
    _pid_file().unlink(missing_ok=True)
    identities.remove()
    return running


def _remove_data_plane(port: int) -> None:
    from nodestack.local_cloud.haproxy import LoadBalancerProxy
    from nodestack.local_cloud.instances import InstanceRuntime

    runtime = InstanceRuntime(str(port), data_plane_dir() / "seeds")
    runtime.remove_with_images()
    LoadBalancerProxy(data_plane_dir() / "haproxy").stop()
    (data_plane_dir() / "status.json").unlink(missing_ok=True)


def environment(port: int, identity: str | None = None) -> dict[str, str]:
    """Variables that point boto3, Ansible's AWS modules and Podman at the local cloud, as
    identity (default $NODESTACK_LOCAL_IDENTITY, else the administrator) when it enforces IAM."""
    identity = identity or os.environ.get(identities.IDENTITY_ENV) or None
    if identities.enforcing():
        keys = identities.credentials(identity)
    elif identity:
        raise LocalCloudError(f"cannot run as {identity}: the local cloud does not enforce IAM; "
                              f"start it with `nodestack local up --enforce-iam`")
    else:
        keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto takes any
    return {
        "AWS_ENDPOINT_URL": f"http://{HOST}:{port}",
        "AWS_REGION": DEFAULT_REGION,
        "AWS_DEFAULT_REGION": DEFAULT_REGION,
        **keys,
        **({identities.IDENTITY_ENV: identity} if identity else {}),
        "CONTAINERS_CONF": str(containers_conf()),
    }
