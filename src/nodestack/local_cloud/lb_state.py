"""What the emulator says the load balancers are, as the HAProxy model wants it: listeners
on a loopback address per load balancer, a backend per target group (or classic ELB), and
the targets that run as containers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.elb.models import elb_backends
from moto.elbv2.models import elbv2_backends

from nodestack.local_cloud.fix_target_health import classic_key
from nodestack.local_cloud.haproxy_config import (
    Action,
    FixedResponse,
    Forward,
    HealthCheck,
    Listener,
    Redirect,
    Target,
    TargetGroup,
)


@dataclass
class LoadBalancerPlan:
    listeners: list[Listener] = field(default_factory=list)
    target_groups: list[TargetGroup] = field(default_factory=list)
    # registered instance ids per target-group key (an ARN, or elb:<name> for a classic ELB)
    registered: dict[str, dict[str, int]] = field(default_factory=dict)
    # load balancer -> (name, dns name, address, target-group keys it forwards to)
    balancers: list[tuple[str, str, str, list[str]]] = field(default_factory=list)


def regions(backends: Any) -> Iterator[Any]:
    """Every backend moto already holds, without creating any."""
    for account in list(backends.keys()):
        holder = backends[account]
        for region in list(holder.keys()):
            yield holder[region]


class Addresses:
    """A stable loopback address per load balancer: 127.<cloud>.<n>, n counting up."""

    def __init__(self, cloud_port: int) -> None:
        self.prefix = f"127.{(cloud_port >> 8) & 255}.{cloud_port & 255}"
        self.given: dict[str, str] = {}

    def for_lb(self, key: str) -> str:
        if key not in self.given:
            used = {int(a.rsplit(".", 1)[1]) for a in self.given.values()}
            self.given[key] = f"{self.prefix}.{min(set(range(1, 255)) - used)}"
        return self.given[key]

    def forget_except(self, keep: set[str]) -> None:
        for key in list(self.given):
            if key not in keep:
                del self.given[key]


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _target_group(group: Any) -> TargetGroup:
    port = group.health_check_port
    matcher = (group.matcher or {}).get("HttpCode", "200") if isinstance(group.matcher, Mapping) else "200"
    health = HealthCheck(
        protocol=(group.health_check_protocol or "HTTP").upper(),
        port=None if port in (None, "traffic-port") else _int(port, group.port),
        path=group.health_check_path or "/",
        interval=_int(group.health_check_interval_seconds, 30),
        timeout=_int(group.health_check_timeout_seconds, 5),
        healthy_threshold=_int(group.healthy_threshold_count, 5),
        unhealthy_threshold=_int(group.unhealthy_threshold_count, 2),
        matcher=str(matcher),
    )
    delay = _int(group.attributes.get("deregistration_delay.timeout_seconds"), 300)
    return TargetGroup(group.arn, health, delay)


def _action(actions: list[Any], port: int) -> Action | None:
    for action in actions:
        data = getattr(action, "data", {}) or {}
        kind = data.get("Type") or getattr(action, "type", None)
        if kind == "forward":
            arn = data.get("TargetGroupArn") or next(
                (g["TargetGroupArn"] for g in data.get("ForwardConfig", {}).get("TargetGroups", [])), None)
            if arn:
                return Forward(arn)
        if kind == "redirect":
            config = data.get("RedirectConfig", {})
            given = str(config.get("Port", "#{port}"))
            status = 302 if config.get("StatusCode") == "HTTP_302" else 301
            return Redirect(str(config.get("Protocol", "HTTPS")).upper(), port if given.startswith("#") else int(given),
                            status)
        if kind == "fixed-response":
            config = data.get("FixedResponseConfig", {})
            return FixedResponse(_int(config.get("StatusCode"), 503), config.get("MessageBody", ""),
                                 config.get("ContentType", "text/plain"))
    return None


def _classic_health(lb: Any, instance_port: int) -> HealthCheck:
    check = lb.health_check
    if check is None:  # AWS default: TCP on the instance port
        return HealthCheck(protocol="TCP", port=instance_port, interval=30, timeout=5,
                           healthy_threshold=10, unhealthy_threshold=2)
    protocol, _, rest = str(check.target).partition(":")
    port_text, _, path = rest.partition("/")
    return HealthCheck(protocol="TCP" if protocol.upper() in ("TCP", "SSL") else "HTTP",
                       port=_int(port_text, instance_port), path="/" + path,
                       interval=_int(check.interval, 30), timeout=_int(check.timeout, 5),
                       healthy_threshold=_int(check.healthy_threshold, 10),
                       unhealthy_threshold=_int(check.unhealthy_threshold, 2))


def plan(addresses: Addresses) -> LoadBalancerPlan:
    """The load balancers of every account and region, as HAProxy should serve them."""
    result = LoadBalancerPlan()
    keep: set[str] = set()
    for backend in regions(elbv2_backends):
        for group in list(backend.target_groups.values()):
            result.target_groups.append(_target_group(group))
            result.registered[group.arn] = {t["Id"]: _int(t.get("Port"), group.port or 80)
                                            for t in list(group.targets.values())}
        for lb in list(backend.load_balancers.values()):
            if getattr(lb, "type", "application") != "application":
                continue
            keep.add(lb.arn)
            address = addresses.for_lb(lb.arn)
            forwards: list[str] = []
            for listener in list(lb.listeners.values()):
                action = _action(listener.default_actions, int(listener.port))
                if action is None:
                    continue
                if isinstance(action, Forward):
                    forwards.append(action.target_group)
                result.listeners.append(Listener(lb.name, address, int(listener.port), listener.protocol or "HTTP",
                                                 action))
            result.balancers.append((lb.name, lb.dns_name, address, forwards))
    for backend in regions(elb_backends):
        for lb in list(backend.load_balancers.values()):
            key = classic_key(lb.name)
            keep.add(key)
            address = addresses.for_lb(key)
            listeners = list(lb.listeners)
            instance_port = _int(listeners[0].instance_port, 80) if listeners else 80
            result.target_groups.append(TargetGroup(key, _classic_health(lb, instance_port), 300))
            result.registered[key] = {i: instance_port for i in list(lb.instance_ids)}
            for listener in listeners:
                result.listeners.append(Listener(lb.name, address, _int(listener.load_balancer_port, 80),
                                                 str(listener.protocol).upper(), Forward(key)))
            result.balancers.append((lb.name, lb.dns_name, address, [key]))
    addresses.forget_except(keep)
    return result


def targets(plan_: LoadBalancerPlan, container_address: Mapping[str, str]) -> list[Target]:
    """Registered targets whose instance runs as a container, at the container's address."""
    return [Target(group, instance, container_address[instance], port)
            for group, members in plan_.registered.items()
            for instance, port in members.items() if instance in container_address]
