"""autoscaling StartInstanceRefresh / DescribeInstanceRefreshes / CancelInstanceRefresh: not
implemented in moto 5.2.

AWS: a rolling refresh replaces the group's instances with ones from its current launch
template or configuration, in batches that keep MinHealthyPercentage (default 90) of the
desired capacity in service: min 100% replaces one instance at a time, 0% all at once.
SkipMatching leaves instances that already match. One refresh at a time per group
(InstanceRefreshInProgress); Cancel stops an active one (ActiveInstanceRefreshNotFound
when there is none). Describe lists the newest first.

A refresh advances on time and health, not on describe calls: the data plane calls
`advance_all` every second. A batch terminates its instances (deregistered from the
group's target groups first) and the group launches replacements from its current launch
template; the batch is done when every new instance of the group is InService and ready
(the data plane's health checks pass) for the warm-up, and only then the next batch
starts. A batch whose new instances are not ready within the grace period + warm-up +
BATCH_MARGIN seconds fails the refresh (Status Failed with a reason); the instances not
yet replaced keep serving; so does one whose new instance Auto Scaling replaces as
unhealthy (`instance_failed`, called by the data plane). Instances the data plane does not
run (no local image) are ready at once.

Rollback (RollbackInstanceRefresh, or the AutoRollback preference when a refresh fails)
needs a DesiredConfiguration with a numbered launch template version (AWS refuses it
otherwise): the group gets back the configuration it had before the refresh, and the
instances launched so far are replaced the same way, batch by batch (RollbackInProgress,
then RollbackSuccessful or RollbackFailed).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress")
BATCH_MARGIN = 120
Ready = Callable[[FakeAutoScalingGroup, str, float], bool]  # (group, instance id, warm-up seconds)


@dataclass
class Refresh:
    group: str
    preferences: dict[str, Any]
    to_replace: list[str]
    refresh_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "Pending"
    start: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    end: datetime | None = None
    replaced: int = 0
    old: set[str] = field(default_factory=set)
    batch_deadline: float | None = None
    reason: str | None = None
    previous: dict[str, Any] | None = None  # the group's configuration before a DesiredConfiguration
    failure: str | None = None  # set when a new instance was replaced as unhealthy
    rollback: dict[str, Any] | None = None  # RollbackDetails once rolling back

    def describe(self) -> dict[str, Any]:
        total = self.replaced + len(self.to_replace)
        done = 100 if self.status == "Successful" else (self.replaced * 100 // total if total else 0)
        item = {"InstanceRefreshId": self.refresh_id, "AutoScalingGroupName": self.group, "Status": self.status,
                "StartTime": self.start, "PercentageComplete": done, "InstancesToUpdate": len(self.to_replace),
                "Preferences": self.preferences}
        if self.reason:
            item["StatusReason"] = self.reason
        if self.rollback:
            rolled = 100 if self.status == "RollbackSuccessful" else done
            item["RollbackDetails"] = {**self.rollback, "PercentageCompleteOnRollback": rolled}
        return {**item, "EndTime": self.end} if self.end else item


def _refreshes(backend: AutoScalingBackend) -> list[Refresh]:
    refreshes: list[Refresh] | None = getattr(backend, "instance_refreshes", None)
    if refreshes is None:  # kept on the backend: reset and regional like the rest of its state
        refreshes = []
        setattr(backend, "instance_refreshes", refreshes)
    return refreshes


def _group(backend: AutoScalingBackend, name: str) -> FakeAutoScalingGroup:
    group = backend.autoscaling_groups.get(name)
    if group is None:
        raise ValidationError(f"AutoScalingGroup name not found - {name}")
    return group


def _matches(group: FakeAutoScalingGroup, instance: Any) -> bool:
    return bool(instance.image_id == group.image_id and instance.instance_type == group.instance_type)


def _batch_size(group: FakeAutoScalingGroup, prefs: dict[str, Any]) -> int:
    desired = group.desired_capacity or 0
    if int(prefs["MaxHealthyPercentage"]) > 100:  # launch before terminating
        return max(1, desired * (int(prefs["MaxHealthyPercentage"]) - 100) // 100)
    return max(1, desired - math.ceil(desired * int(prefs["MinHealthyPercentage"]) / 100))


def _finish(refresh: Refresh, status: str, reason: str | None = None) -> None:
    refresh.status, refresh.end, refresh.reason = status, datetime.now(timezone.utc), reason


def _advance(backend: AutoScalingBackend, refresh: Refresh, ready: Ready) -> None:
    if refresh.status == "Cancelling":
        _finish(refresh, "Cancelled")
        return
    if refresh.status not in ("Pending", "InProgress", "RollbackInProgress"):
        return
    group = backend.autoscaling_groups.get(refresh.group)
    if group is None:
        _finish(refresh, "Failed", "The Auto Scaling group was deleted")
        return
    if refresh.status == "Pending":
        refresh.status = "InProgress"
        return
    present = {state.instance.id for state in group.instance_states}
    refresh.to_replace = [i for i in refresh.to_replace if i in present]
    if refresh.failure:
        _fail(backend, group, refresh, refresh.failure)
        return
    if refresh.batch_deadline is not None:  # a batch is in flight: wait for its replacements
        warmup = float(refresh.preferences.get("InstanceWarmup") or 0)
        new = [s.instance.id for s in group.instance_states if s.instance.id not in refresh.old]
        if len(new) + len(refresh.old & present) >= (group.desired_capacity or 0) and \
                all(ready(group, i, warmup) for i in new):
            refresh.batch_deadline = None
        elif time.monotonic() > refresh.batch_deadline:
            _fail(backend, group, refresh, f"Instances {', '.join(sorted(new)) or '(none launched)'} did not "
                  "pass their health checks; the instances not yet replaced keep serving")
            return
        else:
            return
    if not refresh.to_replace:
        _finish(refresh, "RollbackSuccessful" if refresh.rollback else "Successful")
        return
    batch = refresh.to_replace[:_batch_size(group, refresh.preferences)]
    for arn in group.target_group_arns:  # AWS deregisters replaced instances from the target groups
        backend.elbv2_backend.deregister_targets(arn, [{"Id": i} for i in batch])
    backend.detach_instances(group.name, batch, should_decrement=False)  # refills from the launch template
    backend.ec2_backend.terminate_instances(batch)
    backend.update_attached_target_groups(group.name)
    refresh.to_replace = refresh.to_replace[len(batch):]
    refresh.replaced += len(batch)
    refresh.batch_deadline = time.monotonic() + (group.health_check_grace_period or 0) + float(
        refresh.preferences.get("InstanceWarmup") or 0) + BATCH_MARGIN


def _configuration(group: FakeAutoScalingGroup) -> dict[str, Any]:
    if group.ec2_launch_template is not None:
        return {"LaunchTemplate": {"LaunchTemplateId": group.ec2_launch_template.id,
                                   "Version": group.provided_launch_template_version or "$Default"}}
    return {"LaunchConfigurationName": group.launch_configuration_name}


def _configure(group: FakeAutoScalingGroup, configuration: dict[str, Any]) -> None:
    group._set_launch_configuration(configuration.get("LaunchConfigurationName"),  # type: ignore[arg-type]
                                    configuration.get("LaunchTemplate"), None)  # type: ignore[arg-type]


def _start_rollback(group: FakeAutoScalingGroup, refresh: Refresh, reason: str) -> None:
    present = {s.instance.id for s in group.instance_states}
    _configure(group, refresh.previous or {})
    refresh.status, refresh.failure, refresh.batch_deadline = "RollbackInProgress", None, None
    refresh.rollback = {"RollbackReason": reason, "RollbackStartTime": datetime.now(timezone.utc),
                        "PercentageCompleteOnRollback": 0, "InstancesToUpdateOnRollback": len(present - refresh.old)}
    refresh.to_replace = sorted(present - refresh.old)  # what the refresh launched
    refresh.old = present
    refresh.replaced = 0


def _fail(backend: AutoScalingBackend, group: FakeAutoScalingGroup, refresh: Refresh, reason: str) -> None:
    if refresh.status == "RollbackInProgress":
        _finish(refresh, "RollbackFailed", reason)
    elif refresh.preferences.get("AutoRollback") and refresh.previous is not None:
        refresh.reason = reason
        _start_rollback(group, refresh, f"Instance refresh failed: {reason}")
    else:
        _finish(refresh, "Failed", reason)


def instance_failed(backend: AutoScalingBackend, group_name: str, instance_id: str, why: str) -> None:
    """Auto Scaling replaced an instance as unhealthy: if an active refresh launched it, the
    refresh fails (and rolls back when asked)."""
    for refresh in _refreshes(backend):
        if refresh.group == group_name and refresh.status in ("InProgress", "RollbackInProgress") \
                and instance_id not in refresh.old:
            refresh.failure = f"Instance {instance_id} failed {why}"


def advance_all(backends: list[AutoScalingBackend], ready: Ready) -> None:
    """One step of every active refresh; the data plane calls this every second."""
    for backend in backends:
        for refresh in list(_refreshes(backend)):
            _advance(backend, refresh, ready)


def _start(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group = _group(backend, self._get_param("AutoScalingGroupName"))
    if any(r.group == group.name and r.status in ACTIVE for r in _refreshes(backend)):
        raise AutoscalingClientError("InstanceRefreshInProgress",
                                     "An Instance Refresh is already in progress and blocks the execution of this "
                                     f"Instance Refresh for {group.name}.")
    given = self._get_param("Preferences") or {}
    prefs = {"MinHealthyPercentage": 90, "MaxHealthyPercentage": 100, "SkipMatching": False,
             "InstanceWarmup": group.health_check_grace_period, **given}
    desired = self._get_param("DesiredConfiguration")
    prefs["AutoRollback"] = str(prefs.get("AutoRollback", False)).lower() == "true"
    if prefs["AutoRollback"] and not _reversible(desired):
        raise ValidationError("AutoRollback requires a DesiredConfiguration with a numbered launch template version")
    previous = None
    if desired:
        previous = _configuration(group)
        _configure(group, desired)
    instances = [s.instance for s in group.active_instances()]
    todo = [i.id for i in instances if not (prefs["SkipMatching"] and _matches(group, i))]
    refresh = Refresh(group.name, prefs, todo, old={i.id for i in instances},
                      previous=previous if _reversible(desired) else None)
    _refreshes(backend).append(refresh)
    return ActionResult({"InstanceRefreshId": refresh.refresh_id})


def _describe(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    name = self._get_param("AutoScalingGroupName")
    _group(backend, name)
    wanted = self._get_param("InstanceRefreshIds") or []
    found = [r for r in _refreshes(backend) if r.group == name and (not wanted or r.refresh_id in wanted)]
    found.sort(key=lambda r: r.start, reverse=True)
    return ActionResult({"InstanceRefreshes": [r.describe() for r in found]})


def _reversible(desired: dict[str, Any] | None) -> bool:
    version = str(((desired or {}).get("LaunchTemplate") or {}).get("Version") or "")
    return version.isdigit()


def _rollback(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group = _group(backend, self._get_param("AutoScalingGroupName"))
    active = [r for r in _refreshes(backend) if r.group == group.name and r.status in ("Pending", "InProgress")]
    if not active:
        raise AutoscalingClientError("ActiveInstanceRefreshNotFound",
                                     "No in progress or pending Instance Refresh found "
                                     f"for Auto Scaling group {group.name}")
    if active[0].previous is None:
        raise AutoscalingClientError("IrreversibleInstanceRefresh",
                                     "The instance refresh has no DesiredConfiguration with a numbered launch template "
                                     "version, so it cannot be rolled back")
    _start_rollback(group, active[0], "Rollback requested by the user")
    return ActionResult({"InstanceRefreshId": active[0].refresh_id})


def _cancel(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    name = self._get_param("AutoScalingGroupName")
    _group(backend, name)
    active = [r for r in _refreshes(backend) if r.group == name and r.status in ("Pending", "InProgress")]
    if not active:
        raise AutoscalingClientError("ActiveInstanceRefreshNotFound",
                                     f"No in progress or pending Instance Refresh found for Auto Scaling group {name}")
    active[0].status = "Cancelling"
    return ActionResult({"InstanceRefreshId": active[0].refresh_id})


def apply() -> None:
    AutoScalingResponse.start_instance_refresh = _start  # type: ignore[attr-defined]
    AutoScalingResponse.describe_instance_refreshes = _describe  # type: ignore[attr-defined]
    AutoScalingResponse.cancel_instance_refresh = _cancel  # type: ignore[attr-defined]
    AutoScalingResponse.rollback_instance_refresh = _rollback  # type: ignore[attr-defined]
