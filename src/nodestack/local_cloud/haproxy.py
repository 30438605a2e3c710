"""Run the local cloud's load balancers as one real HAProxy process.

The controller calls `LoadBalancerProxy.apply()` about once a second with the complete
desired state; this module turns differences into the cheapest HAProxy change:

- listeners or health-check settings changed: a seamless reload (new process started
  with `-x <socket> -sf <old pid>`, listening sockets handed over, server states carried
  over through `server-state-file`), after `haproxy -c` accepted the new configuration;
- registered targets changed: runtime API commands only (`add server`, `set server ...
  state drain`, `del server`), no reload;
- nothing changed: nothing at all (no reload, no socket traffic).

Servers always join at run time, also right after a start or a reload, so one code path
gives every new target the AWS semantics: no traffic until `healthy_threshold` checks
passed. All files live in the work directory (config, admin socket, server state, pid
files, self-signed certificate, HAProxy's start-up output in `haproxy.out`).
"""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nodestack.local_cloud.haproxy_config import (
    LISTENER_PROTOCOLS,
    FixedResponse,
    Forward,
    HealthCheck,
    Listener,
    ProxyConfigError,
    Redirect,
    Target,
    TargetGroup,
    backend_name,
    render,
    server_args,
    server_name,
    validate,
)
from nodestack.local_cloud.server import LocalCloudError

__all__ = ["FixedResponse", "Forward", "HAProxyError", "HealthCheck", "Listener", "ListenerBindError",
           "LoadBalancerProxy", "ProxyConfigError", "Redirect", "Target", "TargetGroup", "TargetHealth"]


class HAProxyError(LocalCloudError):
    """HAProxy could not be started, reloaded or driven; the message says why."""


class ListenerBindError(HAProxyError):
    """A listener's address and port could not be bound (in use, or a low port without root)."""

    def __init__(self, listener: Listener, detail: str) -> None:
        self.listener = listener
        super().__init__(
            f"load balancer {listener.load_balancer}: cannot listen on {listener.address}:{listener.port} "
            f"({detail}); free that port (`ss -ltnp 'sport = :{listener.port}'` shows who holds it), "
            f"or run as root for ports below 1024")


@dataclass(frozen=True)
class TargetHealth:
    state: str                  # initial | healthy | unhealthy | draining | unused
    reason: str | None = None   # AWS reason code
    description: str | None = None


_DRAINING = TargetHealth("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
_UNUSED = TargetHealth("unused", "Target.NotInUse",
                       "Target group is not configured to receive traffic from the load balancer")
_NOT_RUNNING = TargetHealth("unhealthy", "Elb.InternalError", "HAProxy is not running; the next apply starts it again")


@dataclass
class _Server:
    """What this process knows about one server it put into HAProxy."""
    target: Target
    name: str
    draining_since: float | None = None
    removing: bool = False                  # in maintenance, `del server` to be retried
    ever_healthy: bool = False
    last_failure: TargetHealth | None = None

    @property
    def path(self) -> str:
        return f"{backend_name(self.target.target_group)}/{self.name}"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _failure(row: dict[str, str]) -> TargetHealth | None:
    """The AWS reason for the last check of a `show stat` row, None when it passed or never ran."""
    status = row.get("check_status", "").lstrip("* ")
    if status in ("", "INI", "L4OK", "L6OK", "L7OK", "L7OKC", "UNK"):
        return None
    if status == "L7STS":
        return TargetHealth("unhealthy", "Target.ResponseCodeMismatch",
                            f"Health checks failed with these codes: [{row.get('check_code', '')}]")
    if status in ("L4TOUT", "L7TOUT", "L6TOUT"):
        return TargetHealth("unhealthy", "Target.Timeout", "Request timed out")
    detail = row.get("last_chk") or row.get("check_desc") or status
    return TargetHealth("unhealthy", "Target.FailedHealthChecks", f"Health checks failed: {detail}")


class LoadBalancerProxy:
    """One HAProxy for all of the local cloud's load balancers, driven by `apply()`."""

    def __init__(self, workdir: Path, haproxy: str = "haproxy") -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._haproxy = haproxy
        self._lock = threading.RLock()
        self._servers: dict[tuple[str, str], _Server] = {}
        self._groups: dict[str, TargetGroup] = {}
        self._unused: list[Target] = []
        self._structure: str | None = None  # config of the running process, servers left out
        self._pid: int | None = None
        self.reloads = 0  # seamless reloads done by this object (starts not counted)

    # -- files -------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def certificate(self) -> Path:
        return self.workdir / "tls" / "local.pem"

    @property
    def _socket(self) -> Path:
        return self.workdir / "admin.sock"

    @property
    def _pid_file(self) -> Path:
        return self.workdir / "haproxy.pid"

    @property
    def _old_pids_file(self) -> Path:  # processes replaced by a reload, still finishing requests
        return self.workdir / "haproxy.old-pids"

    # -- public interface ----------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._pid if self._pid is not None and self._ours(self._pid) else None

    def apply(self, listeners: Sequence[Listener], target_groups: Sequence[TargetGroup],
              targets: Sequence[Target]) -> None:
        """Make HAProxy serve exactly this state; cheap (no-op) when nothing changed."""
        validate(listeners, target_groups)
        groups = {group.name: group for group in target_groups}
        used = {listener.action.target_group for listener in listeners if isinstance(listener.action, Forward)}
        desired: dict[tuple[str, str], Target] = {}
        unused: list[Target] = []
        for target in targets:
            if target.target_group not in groups:
                raise ProxyConfigError(f"target {target.id} is registered with unknown target group "
                                       f"{target.target_group}")
            if target.target_group in used:
                desired[(target.target_group, target.id)] = target
            else:
                unused.append(target)
        with self._lock:
            self._groups, self._unused = groups, unused
            if not listeners:
                self._stop()
                return
            structure = render(listeners, target_groups, {}, self.workdir).text
            if self.pid is None:
                self._start(listeners, target_groups, structure)
            elif structure != self._structure:
                self._reload(listeners, target_groups, structure)
            self._sync(desired)

    def health(self) -> dict[tuple[str, str], TargetHealth]:
        """(target group name, target id) -> health, draining targets included."""
        with self._lock:
            result = {(t.target_group, t.id): _UNUSED for t in self._unused}
            live = [s for s in self._servers.values() if not s.removing]
            if not live:
                return result
            try:
                rows = self._stat() if self.pid is not None else None
            except OSError:  # died just now: the next apply starts it again
                rows = None
            for server in live:
                key = (server.target.target_group, server.target.id)
                if server.draining_since is not None:
                    result[key] = _DRAINING
                elif rows is None:
                    result[key] = _NOT_RUNNING
                else:
                    result[key] = self._judge(server, rows.get(server.path))
            return result

    def stop(self) -> None:
        """Stop HAProxy (also one left by an earlier, crashed run); idempotent."""
        with self._lock:
            self._stop()

    # -- process ---------------------------------------------------------------------------
    def _ours(self, pid: int) -> bool:
        """pid is alive (not a zombie) and is an HAProxy of this work directory."""
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return (bool(args) and os.path.basename(args[0]) == b"haproxy"
                and any(str(self.workdir).encode() in arg for arg in args))

    def _recorded_pids(self) -> list[int]:
        pids = [] if self._pid is None else [self._pid]
        for path in (self._pid_file, self._old_pids_file):
            try:
                pids += [int(word) for word in path.read_text().split()]
            except (OSError, ValueError):
                pass
        return [pid for pid in dict.fromkeys(pids) if self._ours(pid)]

    def _stop(self) -> None:
        pids = self._recorded_pids()
        for pid in pids:
            _signal(pid, signal.SIGTERM)  # hard stop: the load balancers are going away
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if self._ours(pid)]
            time.sleep(0.02)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        for path in (self._pid_file, self._old_pids_file, self._socket):
            path.unlink(missing_ok=True)
        self._pid, self._structure = None, None
        self._servers.clear()

    def _start(self, listeners: Sequence[Listener], groups: Sequence[TargetGroup], structure: str) -> None:
        self._stop()  # a process of an earlier run (or ours, crashed): its servers are unknown
        (self.workdir / "server-state").write_text("")
        self._launch(listeners, groups, {}, previous=None)
        self._structure = structure

    def _reload(self, listeners: Sequence[Listener], groups: Sequence[TargetGroup], structure: str) -> None:
        state = self._cli("show servers state")
        (self.workdir / "server-state").write_text(state)
        by_name = {g.name: g for g in groups}
        used = {listener.action.target_group for listener in listeners if isinstance(listener.action, Forward)}
        for key, server in list(self._servers.items()):
            if server.removing or key[0] not in used:  # its backend goes, or it was on its way out
                del self._servers[key]
        servers: dict[str, list[tuple[str, str]]] = {}
        for server in self._servers.values():
            group = by_name[server.target.target_group]
            servers.setdefault(group.name, []).append((server.name, server_args(server.target, group)))
        before = self._stat()
        self._launch(listeners, groups, servers, previous=self._pid)
        self._structure = structure
        self.reloads += 1
        # Carried-over servers keep their state from the file. Should one be missing there,
        # HAProxy would start it UP: force down any server that was not UP before.
        after = self._stat()
        for server in self._servers.values():
            was = before.get(server.path, {}).get("status", "")
            if after.get(server.path, {}).get("status", "").startswith("UP") and not was.startswith("UP"):
                self._run(f"set server {server.path} health down")

    def _launch(self, listeners: Sequence[Listener], groups: Sequence[TargetGroup],
                servers: dict[str, list[tuple[str, str]]], previous: int | None) -> None:
        if any(LISTENER_PROTOCOLS[listener.protocol.upper()] == "HTTPS" for listener in listeners):
            self._ensure_certificate()
        rendered = render(listeners, groups, servers, self.workdir)
        for name, content in rendered.files.items():
            path = self.workdir / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(content)
        candidate = self.workdir / "haproxy.cfg.next"
        candidate.write_text(rendered.text)
        check = subprocess.run([self._haproxy, "-c", "-f", str(candidate)], capture_output=True, text=True,
                               check=False, timeout=30)
        if check.returncode != 0:
            names = sorted({listener.load_balancer for listener in listeners})
            raise HAProxyError(f"HAProxy rejected the configuration for load balancers {', '.join(names)} "
                               f"({candidate}):\n{check.stdout}{check.stderr}")
        current = self.config_file.read_text() if self.config_file.exists() else None
        os.replace(candidate, self.config_file)
        command = [self._haproxy, "-D", "-f", str(self.config_file), "-p", str(self._pid_file)]
        if previous is not None:
            command += ["-x", str(self._socket), "-sf", str(previous)]
        output = self.workdir / "haproxy.out"
        with output.open("w") as out:
            started = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     check=False, timeout=30, start_new_session=True)
        if started.returncode != 0:
            if current is not None:
                self.config_file.write_text(current)  # the file stays the running process's config
            raise self._launch_error(output.read_text(errors="replace"), listeners)
        self._pid = int(self._pid_file.read_text().split()[0])
        if previous is not None:
            old = [pid for pid in self._recorded_pids() if pid != self._pid]
            self._old_pids_file.write_text("".join(f"{pid}\n" for pid in old))

    @staticmethod
    def _launch_error(output: str, listeners: Sequence[Listener]) -> HAProxyError:
        for line in output.splitlines():
            found = re.search(r"cannot bind socket \(([^)]*)\).*\[(\d+\.\d+\.\d+\.\d+):(\d+)\]", line)
            if found:
                for listener in listeners:
                    if (listener.address, listener.port) == (found[2], int(found[3])):
                        return ListenerBindError(listener, found[1])
        return HAProxyError(f"HAProxy did not start:\n{output}")

    def _ensure_certificate(self) -> Path:
        """A self-signed certificate for HTTPS listeners, made once; key and cert in one 0600 PEM."""
        pem = self.certificate
        if pem.exists():
            return pem
        pem.parent.mkdir(mode=0o700, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=pem.parent) as tmp:
            key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
            made = subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-days", "3650", "-keyout", str(key), "-out", str(cert),
                 "-subj", "/O=nodestack/CN=nodestack local load balancer",
                 "-addext", "subjectAltName=DNS:localhost,DNS:*.elb.amazonaws.com,IP:127.0.0.1"],
                capture_output=True, text=True, check=False, timeout=60)
            if made.returncode != 0:
                raise HAProxyError(f"openssl could not make the HTTPS listeners' certificate:\n{made.stderr}")
            partial = pem.with_suffix(".tmp")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(cert.read_text() + key.read_text())
            os.replace(partial, pem)
        return pem

    # -- runtime API -------------------------------------------------------------------------
    def _cli(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self._socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def _run(self, command: str, ok: str = "") -> str:
        answer = self._cli(command).strip()
        if answer != ok:
            raise HAProxyError(f"HAProxy refused `{command}`: {answer}")
        return answer

    def _stat(self) -> dict[str, dict[str, str]]:
        """`show stat` of all servers, by "backend/server"."""
        lines = self._cli("show stat -1 4 -1").lstrip("# ").splitlines()
        return {f"{row['pxname']}/{row['svname']}": row for row in csv.DictReader(lines) if row.get("svname")}

    def _sync(self, desired: dict[tuple[str, str], Target]) -> None:
        for key, target in desired.items():
            server = self._servers.get(key)
            if server is None:
                self._add(key, target)
            elif server.removing or server.draining_since is not None or server.target != target:
                self._reinstate(server, target)
        now = time.monotonic()
        for key, server in list(self._servers.items()):
            if key in desired:
                continue
            group = self._groups.get(key[0])
            delay = group.deregistration_delay if group else 0
            if server.draining_since is None and not server.removing:
                self._run(f"set server {server.path} state drain")  # no new connections, existing ones finish
                server.draining_since = now
            if server.removing or now - (server.draining_since or now) >= delay:
                self._remove(key, server)

    def _add(self, key: tuple[str, str], target: Target) -> None:
        server = _Server(target, server_name(target.id))
        args = server_args(target, self._groups[target.target_group])
        self._run(f"add server {server.path} {args} weight 0", ok="New server registered.")
        self._servers[key] = server
        self._start_checking(server, from_maintenance=True)

    def _start_checking(self, server: _Server, from_maintenance: bool) -> None:
        """Bring a server in as AWS brings a new target: DOWN until `rise` checks passed.

        Leaving maintenance marks a checked server UP at once, so this happens at weight 0
        (no traffic) and the server is forced DOWN before it gets its weight.
        """
        path = server.path
        if from_maintenance:
            self._run(f"enable health {path}")
        else:
            self._run(f"set server {path} weight 0")
        self._run(f"set server {path} state ready")
        self._run(f"set server {path} health down")
        self._run(f"set server {path} weight 1")
        server.ever_healthy, server.last_failure = False, None

    def _reinstate(self, server: _Server, target: Target) -> None:
        """A target registered again while draining, or moved to another address: a new registration."""
        if (server.target.address, server.target.port) != (target.address, target.port):
            self._cli(f"set server {server.path} addr {target.address} port {target.port}")
        server.target, server.draining_since, server.removing = target, None, False
        self._start_checking(server, from_maintenance=False)

    def _remove(self, key: tuple[str, str], server: _Server) -> None:
        self._run(f"set server {server.path} state maint")
        self._run(f"shutdown sessions server {server.path}")  # the deregistration delay is over
        if self._cli(f"del server {server.path}").strip() == "Server deleted.":
            del self._servers[key]
        else:  # idle or closing connections left: try again on the next apply
            server.removing = True

    def _judge(self, server: _Server, row: dict[str, str] | None) -> TargetHealth:
        if row is None:
            return TargetHealth("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
        if row.get("status", "").startswith("UP"):
            server.ever_healthy = True
            return TargetHealth("healthy")
        failure = _failure(row)
        if failure is not None and not (row.get("check_code") in ("", "0") and server.last_failure is not None
                                        and server.last_failure.reason == failure.reason):
            server.last_failure = failure  # (a reload restores the status but not the code: keep the codes seen)
        if server.ever_healthy or server.last_failure is not None:
            return server.last_failure or TargetHealth("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
        if row.get("check_status", "").lstrip("* ") in ("", "INI"):
            return TargetHealth("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
        return TargetHealth("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
