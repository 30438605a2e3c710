"""elbv2 DescribeTargetHealth and elb DescribeInstanceHealth report what the data plane sees.

moto 5.2 reports every registered target `healthy` (classic: every running instance
`InService`), whatever answers on it. AWS reports the load balancer's health checks:
`initial` while a new target passes its first checks, `healthy`, `unhealthy` with a reason
(Target.FailedHealthChecks, Target.ResponseCodeMismatch, Target.Timeout), `draining` for the
deregistration delay after a target leaves, then nothing. The data-plane controller records
HAProxy's view here; targets it does not run (instances whose AMI has no local image)
keep moto's answer, and `nodestack local status` lists them as api-only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.elb.models import ELBBackend
from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup


@dataclass(frozen=True)
class Observed:
    state: str  # initial | healthy | unhealthy | draining
    reason: str | None = None
    description: str | None = None


class HealthBoard:
    """What the data plane last saw, keyed by (target group ARN or `elb:<name>`, instance id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], Observed] = {}
        self._draining: dict[str, dict[str, int]] = {}
        # Whether an AMI runs in the data plane; set by the controller. A target of such an
        # instance that the board has not seen yet (launched since the last tick) is initial.
        self.runs_image: Callable[[str], bool] = lambda _ami: False

    def replace(self, seen: dict[tuple[str, str], Observed], draining: dict[str, dict[str, int]]) -> None:
        with self._lock:
            self._seen, self._draining = dict(seen), {k: dict(v) for k, v in draining.items()}

    def get(self, key: str, target_id: str) -> Observed | None:
        with self._lock:
            return self._seen.get((key, target_id))

    def draining(self, key: str) -> dict[str, int]:
        with self._lock:
            return dict(self._draining.get(key, {}))


BOARD = HealthBoard()


def classic_key(name: str) -> str:
    return f"elb:{name}"


def _health_for(original: Callable[..., FakeHealthStatus]) -> Callable[..., FakeHealthStatus]:
    def health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
        seen = BOARD.get(self.arn, target["Id"])
        if seen is None and target["Id"] in self.targets:
            instance = ec2_backend.get_instance_by_id(target["Id"])
            if (instance is not None and instance.state in ("pending", "running")
                    and BOARD.runs_image(instance.image_id)):
                seen = Observed("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
        if seen is None:
            return original(self, target, ec2_backend)
        port = target.get("Port") or (self.targets.get(target["Id"]) or {}).get("Port") or self.port
        return FakeHealthStatus(target["Id"], port, self.health_check_port, seen.state, seen.reason, seen.description)
    return health_for


def _describe_target_health(original: Callable[..., list[FakeHealthStatus]]) -> Callable[..., list[FakeHealthStatus]]:
    def describe(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> list[FakeHealthStatus]:
        if targets:
            return original(self, target_group_arn, targets)
        listed = original(self, target_group_arn, targets)
        known = {status.instance_id for status in listed}
        group = self.target_groups[target_group_arn]
        for target_id, port in BOARD.draining(target_group_arn).items():
            if target_id not in known:
                listed.append(FakeHealthStatus(target_id, str(port), group.health_check_port, "draining",
                                               "Target.DeregistrationInProgress",
                                               "Target deregistration is in progress"))
        return listed
    return describe


def _describe_instance_health(original: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[dict[str, Any]]]:
    def describe(self: ELBBackend, lb_name: str, instances: list[dict[str, str]]) -> list[dict[str, Any]]:
        states = original(self, lb_name, instances)
        for item in states:
            seen = BOARD.get(classic_key(lb_name), item["InstanceId"])
            if seen is not None and item["State"] != "Unknown":
                item["State"] = "InService" if seen.state == "healthy" else "OutOfService"
        return states
    return describe


def apply() -> None:
    from moto.elbv2.models import ELBv2Backend

    FakeTargetGroup.health_for = _health_for(FakeTargetGroup.health_for)  # type: ignore[method-assign]
    ELBv2Backend.describe_target_health = _describe_target_health(  # type: ignore[method-assign]
        ELBv2Backend.describe_target_health)
    ELBBackend.describe_instance_health = _describe_instance_health(  # type: ignore[method-assign]
        ELBBackend.describe_instance_health)
