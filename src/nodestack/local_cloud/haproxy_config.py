"""The load balancers' desired state, and the HAProxy configuration that serves it.

Pure functions only: `haproxy.py` runs the process and changes servers at run time.
Everything a user controls (names, paths, bodies) reaches the configuration through
`quote()` or a file, never as raw text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class HealthCheck:
    protocol: str = "HTTP"      # HTTP, HTTPS (checked over plain HTTP locally) or TCP
    port: int | None = None     # None: the target's traffic port
    path: str = "/"
    interval: int = 30          # seconds
    timeout: int = 5            # seconds
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    matcher: str = "200"        # AWS syntax: "200", "200-299", "200,302"


@dataclass(frozen=True)
class TargetGroup:
    name: str                   # unique key, e.g. the target group's ARN
    health: HealthCheck = field(default_factory=HealthCheck)
    deregistration_delay: int = 300


@dataclass(frozen=True)
class Forward:
    target_group: str


@dataclass(frozen=True)
class Redirect:
    protocol: str               # HTTP or HTTPS
    port: int
    status_code: int = 301      # 301 or 302


@dataclass(frozen=True)
class FixedResponse:
    status_code: int
    body: str = ""
    content_type: str = "text/plain"


Action = Forward | Redirect | FixedResponse


@dataclass(frozen=True)
class Listener:
    load_balancer: str          # name, for logs and errors
    address: str                # loopback IPv4 chosen by the caller
    port: int
    protocol: str               # HTTP or HTTPS; classic ELB TCP is served as HTTP, SSL as HTTPS
    action: Action


@dataclass(frozen=True)
class Target:
    target_group: str
    id: str                     # instance id
    address: str                # container IPv4
    port: int


class ProxyConfigError(ValueError):
    """The desired state cannot be served; the message names the offending piece."""


# Protocols of classic ELB listeners map onto the two HAProxy frontends we render.
LISTENER_PROTOCOLS = {"HTTP": "HTTP", "HTTPS": "HTTPS", "TCP": "HTTP", "SSL": "HTTPS"}
_MATCHER = re.compile(r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

# Traffic settings, one place, with the reasons:
# - `timeout connect 1s`: targets are containers on a local bridge; a live one accepts in well
#   under a millisecond, so a connect that takes a second is a stopped or vanished container.
#   (ALB waits 10 s; locally that would only stall requests behind a dead target.)
# - `retries 3` + `option redispatch 1`: a connection that could not be ESTABLISHED (refused,
#   unreachable, connect timeout) is retried, each retry on another server. No request has
#   reached a target yet, so this is safe for any method, and it hides the window between a
#   container stopping and its health checks failing (6/200 requests were lost there with
#   HAProxy's defaults). `retry-on` stays at its default (`conn-failure`): a request a target
#   accepted and then failed is answered 502, as an ALB does; it is never sent twice.
# - client/server idle 60 s: the ALB's default idle timeout.
_GLOBAL_DEFAULTS = """\
defaults
    mode http
    option dontlognull
    option forwardfor
    load-server-state-from-file global
    timeout connect 1s
    retries 3
    option redispatch 1
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s
"""


def quote(value: str) -> str:
    """One HAProxy configuration word holding exactly `value` (no variable expansion)."""
    if any(ch in value for ch in "\r\n\0"):
        raise ProxyConfigError(f"{value!r}: line breaks cannot be part of a load balancer setting")
    return "'" + value.replace("'", "'\\''") + "'"


def _slug(value: str, limit: int, readable: str | None = None) -> str:
    """A readable HAProxy name part; a hash of `value` keeps distinct inputs distinct."""
    readable = value if readable is None else readable
    clean = _NAME_UNSAFE.sub("_", readable)
    if clean == value and len(clean) <= limit:
        return clean
    digest = hashlib.sha1(value.encode()).hexdigest()[:8]
    return f"{clean[-(limit - 9):]}-{digest}"


def backend_name(target_group: str) -> str:
    """`tg-<name>_<id>-<hash>` for an ARN (arn:...:targetgroup/<name>/<id>)."""
    return "tg-" + _slug(target_group, 60, target_group.rpartition(":targetgroup/")[2])


def server_name(target_id: str) -> str:
    return _slug(target_id, 60)


def frontend_name(listener: Listener) -> str:
    return f"lb-{_slug(listener.load_balancer, 40)}-{listener.address}-{listener.port}"


def validate(listeners: Sequence[Listener], target_groups: Sequence[TargetGroup]) -> None:
    """Raise ProxyConfigError for a state no load balancer could have, naming the piece."""
    groups = {group.name for group in target_groups}
    if len(groups) != len(target_groups):
        raise ProxyConfigError("two target groups share a name")
    seen: dict[tuple[str, int], str] = {}
    for listener in listeners:
        where = f"listener {listener.protocol}:{listener.port} of {listener.load_balancer}"
        if listener.protocol.upper() not in LISTENER_PROTOCOLS:
            raise ProxyConfigError(f"{where}: protocol must be one of {sorted(LISTENER_PROTOCOLS)}")
        if not 0 < listener.port < 65536:
            raise ProxyConfigError(f"{where}: port {listener.port} is not a TCP port")
        if not listener.address.startswith("127."):
            raise ProxyConfigError(f"{where}: address {listener.address} is not loopback (127.0.0.0/8)")
        key = (listener.address, listener.port)
        if key in seen:
            raise ProxyConfigError(f"{where}: {listener.address}:{listener.port} is already used by {seen[key]}")
        seen[key] = listener.load_balancer
        action = listener.action
        if isinstance(action, Forward) and action.target_group not in groups:
            raise ProxyConfigError(f"{where}: forwards to unknown target group {action.target_group}")
        if isinstance(action, Redirect) and (action.protocol.upper() not in ("HTTP", "HTTPS")
                                             or action.status_code not in (301, 302)):
            raise ProxyConfigError(f"{where}: a redirect needs protocol HTTP/HTTPS and status 301/302")
        if isinstance(action, FixedResponse) and not 200 <= action.status_code <= 599:
            raise ProxyConfigError(f"{where}: fixed response status {action.status_code} is not 2XX-5XX")
    for group in target_groups:
        check = group.health
        if check.protocol.upper() not in ("HTTP", "HTTPS", "TCP"):
            raise ProxyConfigError(f"target group {group.name}: health check protocol {check.protocol!r}")
        if check.protocol.upper() != "TCP" and not _MATCHER.match(check.matcher.replace(" ", "")):
            raise ProxyConfigError(f"target group {group.name}: matcher {check.matcher!r} "
                                   "is not like 200, 200-299 or 200,302")
        if min(check.interval, check.timeout, check.healthy_threshold, check.unhealthy_threshold) < 1:
            raise ProxyConfigError(f"target group {group.name}: health check numbers must be positive")


def server_args(target: Target, group: TargetGroup) -> str:
    """Everything after the server name, shared by config lines and `add server`."""
    check = group.health
    args = (f"{target.address}:{target.port} check inter {check.interval}s "
            f"rise {check.healthy_threshold} fall {check.unhealthy_threshold}")
    if check.port is not None:
        args += f" port {check.port}"
    return args


def _backend(group: TargetGroup, servers: Sequence[tuple[str, str]]) -> list[str]:
    check = group.health
    lines = [f"backend {backend_name(group.name)}",
             "    balance roundrobin",  # dynamic: `add server` needs it
             f"    timeout check {check.timeout}s"]
    if check.protocol.upper() != "TCP":  # HTTPS checks go over plain HTTP: targets serve plain HTTP locally
        lines += ["    option httpchk",
                  f"    http-check send meth GET uri {quote(check.path)} ver HTTP/1.1 "
                  "hdr Host localhost hdr User-Agent ELB-HealthChecker/2.0",
                  f"    http-check expect status {check.matcher.replace(' ', '')}"]
    lines += [f"    server {name} {args}" for name, args in servers]
    return lines


def _frontend(listener: Listener, workdir: Path, response_files: dict[str, str]) -> list[str]:
    certificate = workdir / "tls" / "local.pem"
    secure = LISTENER_PROTOCOLS[listener.protocol.upper()] == "HTTPS"
    bind = f"    bind {listener.address}:{listener.port}"
    if secure:
        bind += f" ssl crt {quote(str(certificate))} alpn h2,http/1.1"
    lines = [f"frontend {frontend_name(listener)}", bind,
             f"    http-request set-header X-Forwarded-Proto {'https' if secure else 'http'}",
             f"    http-request set-header X-Forwarded-Port {listener.port}"]
    action = listener.action
    if isinstance(action, Forward):
        lines.append(f"    default_backend {backend_name(action.target_group)}")
    elif isinstance(action, Redirect):
        scheme = action.protocol.lower()
        port = "" if (scheme, action.port) in (("http", 80), ("https", 443)) else f":{action.port}"
        lines.append(f"    http-request redirect location {scheme}://%[req.hdr(host),field(1,:)]{port}%[pathq] "
                     f"code {action.status_code}")
    else:
        ret = f"    http-request return status {action.status_code}"
        if action.body:
            name = "responses/" + hashlib.sha1(action.body.encode()).hexdigest()[:16] + ".body"
            response_files[name] = action.body
            ret += f" content-type {quote(action.content_type)} file {quote(str(workdir / name))}"
        lines.append(ret)
    return lines


@dataclass(frozen=True)
class Rendered:
    text: str
    files: Mapping[str, str]    # path relative to workdir -> content


def render(listeners: Sequence[Listener], target_groups: Sequence[TargetGroup],
           servers: Mapping[str, Sequence[tuple[str, str]]], workdir: Path) -> Rendered:
    """The whole configuration; `servers` maps a target group name to (server name, args)."""
    files: dict[str, str] = {}
    used = {listener.action.target_group for listener in listeners if isinstance(listener.action, Forward)}
    lines = ["# Written by nodestack.local_cloud.haproxy: changes are overwritten.",
             "global",
             f"    stats socket {quote(str(workdir / 'admin.sock'))} mode 600 level admin expose-fd listeners",
             f"    server-state-file {quote(str(workdir / 'server-state'))}",
             # a process replaced by a reload finishes its requests, but not forever
             "    hard-stop-after 2m",
             "    ssl-default-bind-options ssl-min-ver TLSv1.2",
             "", _GLOBAL_DEFAULTS]
    for listener in sorted(listeners, key=lambda item: (item.address, item.port)):
        lines += _frontend(listener, workdir, files) + [""]
    for group in sorted(target_groups, key=lambda g: g.name):
        if group.name in used:
            lines += _backend(group, servers.get(group.name, ())) + [""]
    return Rendered("\n".join(lines), files)
