"""autoscaling: where instances launch and which ones a scale-in terminates.

moto 5.2 launches every instance of a group in the first subnet of VPCZoneIdentifier,
picks the instances to terminate on scale-in by list order, and ignores the
TerminationPolicies of UpdateAutoScalingGroup.

AWS (Auto Scaling user guide, "Availability Zone rebalancing" and "Control which instances
terminate during scale in"): a group launches each new instance in the zone that has the
fewest of its instances, so zones stay balanced. On scale-in it first picks the zone with
the most instances, then applies the termination policies in order until one instance is
left: OldestInstance / NewestInstance (launch time), OldestLaunchConfiguration /
OldestLaunchTemplate (instances not on the group's current configuration first),
ClosestToNextInstanceHour; Default is OldestLaunchTemplate, OldestLaunchConfiguration then
ClosestToNextInstanceHour; a tie left at the end is broken at random. Instances protected
from scale-in are never picked.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from moto.autoscaling.models import ASG_NAME_TAG, FakeAutoScalingGroup, InstanceState
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

Pick = Callable[[FakeAutoScalingGroup, list[InstanceState]], list[InstanceState]]


def _zone_of_subnet(group: FakeAutoScalingGroup) -> dict[str, str]:
    ec2 = group.autoscaling_backend.ec2_backend
    subnets = [s for s in (group.vpc_zone_identifier or "").split(",") if s]
    return {s: ec2.get_subnet(s).availability_zone for s in subnets}


def _zone(state: InstanceState) -> str:
    return str(state.instance.placement.zone if hasattr(state.instance.placement, "zone") else state.instance.placement)


def _launch_balanced(self: FakeAutoScalingGroup, count_needed: int, propagated_tags: dict[str, str]) -> None:
    subnet_zone = _zone_of_subnet(self)
    if not subnet_zone:  # EC2-Classic style group: zones only
        subnet_zone = {"": zone for zone in self.availability_zones}
    tags = {**propagated_tags, ASG_NAME_TAG: self.name, **self.instance_tags}
    launch_template = None
    if self.ec2_launch_template:
        launch_template = ({"LaunchTemplateId": self.ec2_launch_template.id} if self.ec2_launch_template.id
                           else {"LaunchTemplateName": self.ec2_launch_template.name})
    associate_public_ip = self.launch_config.associate_public_ip_address if self.launch_config else None
    for _ in range(count_needed):
        per_zone = Counter(_zone(s) for s in self.active_instances())
        order = list(subnet_zone.items())
        subnet, zone = min(order, key=lambda item: (per_zone[item[1]], order.index(item)))
        reservation = self.autoscaling_backend.ec2_backend.run_instances(
            self.image_id, 1, self.user_data, self.security_groups, instance_type=self.instance_type,
            tags={"instance": dict(tags)}, placement=zone, launch_config=self.launch_config,
            launch_template=launch_template, is_instance_type_default=False,
            associate_public_ip=associate_public_ip, subnet_id=subnet or None,
        )
        for instance in reservation.instances:
            instance.autoscaling_group = self  # type: ignore[attr-defined]
            self.instance_states.append(
                InstanceState(instance, protected_from_scale_in=self.new_instances_protected_from_scale_in))


def _launch_time(state: InstanceState) -> datetime:
    value = state.instance.launch_time
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _outdated(group: FakeAutoScalingGroup, states: list[InstanceState]) -> list[InstanceState]:
    old = [s for s in states
           if s.instance.image_id != group.image_id or s.instance.instance_type != group.instance_type]
    return old or states


def _closest_to_hour(group: FakeAutoScalingGroup, states: list[InstanceState]) -> list[InstanceState]:
    def left(state: InstanceState) -> int:
        launched = _launch_time(state)
        return 3600 - int((datetime.now(launched.tzinfo) - launched).total_seconds()) % 3600
    remaining = {id(s): left(s) for s in states}  # once: the clock moves between calls
    best = min(remaining.values())
    return [s for s in states if remaining[id(s)] == best]


def _by_age(newest: bool) -> Pick:
    def pick(group: FakeAutoScalingGroup, states: list[InstanceState]) -> list[InstanceState]:
        edge = (max if newest else min)(_launch_time(s) for s in states)
        return [s for s in states if _launch_time(s) == edge]
    return pick


POLICIES: dict[str, list[Pick]] = {
    "OldestInstance": [_by_age(newest=False)],
    "NewestInstance": [_by_age(newest=True)],
    "OldestLaunchConfiguration": [_outdated],
    "OldestLaunchTemplate": [_outdated],
    "ClosestToNextInstanceHour": [_closest_to_hour],
    "AllocationStrategy": [],
    "Default": [_outdated, _closest_to_hour],
}


def choose_for_scale_in(group: FakeAutoScalingGroup, count: int) -> list[InstanceState]:
    """The instances a scale-in of `count` terminates, one at a time, as AWS picks them."""
    candidates = [s for s in group.active_instances() if not s.protected_from_scale_in]
    chosen: list[InstanceState] = []
    for _ in range(min(count, len(candidates))):
        per_zone = Counter(_zone(s) for s in group.active_instances() if s not in chosen)
        left = [s for s in candidates if s not in chosen]
        busiest = max(per_zone[_zone(s)] for s in left)
        pool = [s for s in left if per_zone[_zone(s)] == busiest]
        for policy in [*(group.termination_policies or []), "Default"]:
            for pick in POLICIES.get(policy, []):
                if len(pool) > 1:
                    pool = pick(group, pool)
        chosen.append(random.choice(pool))
    return chosen


def _patched_set_desired_capacity(original: Callable[..., None]) -> Callable[..., None]:
    def set_desired_capacity(self: FakeAutoScalingGroup, new_capacity: int | None) -> None:
        target = self.min_size if new_capacity is None else new_capacity
        excess = len(self.active_instances()) - (target or 0)
        if excess > 0 and not self.mixed_instances_policy:
            doomed = choose_for_scale_in(self, excess)
            if doomed:
                self.autoscaling_backend.ec2_backend.terminate_instances([s.instance.id for s in doomed])
                self.instance_states = [s for s in self.instance_states if s not in doomed]
        original(self, new_capacity)
    return set_desired_capacity


def _patched_update(original: Callable[[AutoScalingResponse], Any]) -> Callable[[AutoScalingResponse], Any]:
    def update(self: AutoScalingResponse) -> ActionResult:
        result = original(self)
        policies = self._get_param("TerminationPolicies")
        if policies:
            group = self.autoscaling_backend.autoscaling_groups[self._get_param("AutoScalingGroupName")]
            group.termination_policies = list(policies)
        return result
    return update


def apply() -> None:
    FakeAutoScalingGroup.replace_autoscaling_group_instances = _launch_balanced  # type: ignore[method-assign]
    FakeAutoScalingGroup.set_desired_capacity = _patched_set_desired_capacity(  # type: ignore[method-assign]
        FakeAutoScalingGroup.set_desired_capacity)
    AutoScalingResponse.update_auto_scaling_group = _patched_update(  # type: ignore[method-assign,assignment]
        AutoScalingResponse.update_auto_scaling_group)
