"""Load balancer metrics into CloudWatch, and the alarms on them evaluated, as AWS does.

AWS/ApplicationELB publishes HealthyHostCount and UnHealthyHostCount per target group
(dimensions TargetGroup and LoadBalancer, the ARNs' tails) every minute; AWS/ELB publishes
them per classic load balancer (LoadBalancerName). An alarm on such a metric compares the
statistic of each of its last EvaluationPeriods periods with its threshold and goes to
ALARM when enough breach (DatapointsToAlarm, default all), OK when none do. Here the data
plane samples HAProxy's view every tick, publishes one datapoint a minute (the maximum it
saw, so a short dip is not lost), and evaluates alarms from its own samples per period.
Other metrics (CPU) have no local source: their alarms keep moto's state.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends

from nodestack.local_cloud.fix_target_health import Observed
from nodestack.local_cloud.lb_state import LoadBalancerPlan, regions

PUBLISH_SECONDS = 60
_OPS = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}

# (namespace, frozenset of dimensions) -> samples of (time, healthy, unhealthy)
_samples: dict[tuple[str, frozenset[tuple[str, str]]], deque[tuple[float, int, int]]] = defaultdict(
    lambda: deque(maxlen=3600))
_last_publish = 0.0


def _dimensions(group_key: str, lb_arns: list[str]) -> tuple[str, dict[str, str]] | None:
    if group_key.startswith("elb:"):
        return "AWS/ELB", {"LoadBalancerName": group_key[4:]}
    tail = group_key.split(":")[-1]
    if not lb_arns:
        return None
    return "AWS/ApplicationELB", {"TargetGroup": tail, "LoadBalancer": lb_arns[0].split(":")[-1].split("/", 1)[1]}


def _counts(
    plan: LoadBalancerPlan, health: Mapping[tuple[str, str], Observed]
) -> dict[tuple[str, frozenset[tuple[str, str]]], tuple[int, int]]:
    from moto.elbv2.models import elbv2_backends

    lb_of_group: dict[str, list[str]] = {}
    for backend in regions(elbv2_backends):
        for group in list(backend.target_groups.values()):
            lb_of_group[group.arn] = list(group.load_balancer_arns)
    counts = {}
    for key, members in plan.registered.items():
        named = _dimensions(key, lb_of_group.get(key, []))
        if named is None:
            continue
        states = [health.get((key, m), Observed("healthy")).state for m in members]
        counts[(named[0], frozenset(named[1].items()))] = (states.count("healthy"), states.count("unhealthy"))
    return counts


def publish_and_evaluate(plan: LoadBalancerPlan, health: Mapping[tuple[str, str], Observed]) -> None:
    global _last_publish
    now = time.time()
    counts = _counts(plan, health)
    for key, (healthy, unhealthy) in counts.items():
        _samples[key].append((now, healthy, unhealthy))
    if now - _last_publish < PUBLISH_SECONDS:
        return
    _last_publish = now
    stamp = datetime.now(timezone.utc).replace(tzinfo=None)  # moto keeps CloudWatch times naive UTC
    for backend in regions(cloudwatch_backends):
        for (namespace, dims), _ in counts.items():
            window = [s for s in _samples[(namespace, dims)] if s[0] > now - PUBLISH_SECONDS]
            if not window:
                continue
            dimensions = [{"Name": k, "Value": v} for k, v in sorted(dims)]
            backend.put_metric_data(namespace, [
                {"MetricName": "HealthyHostCount", "Value": max(s[1] for s in window), "Unit": "Count",
                 "Timestamp": stamp, "Dimensions": dimensions},
                {"MetricName": "UnHealthyHostCount", "Value": max(s[2] for s in window), "Unit": "Count",
                 "Timestamp": stamp, "Dimensions": dimensions},
            ])
        for alarm in list(backend.alarms.values()):
            _evaluate(backend, alarm, now)


def _statistic(values: list[float], statistic: str) -> float:
    if statistic == "Minimum":
        return min(values)
    if statistic == "Average":
        return sum(values) / len(values)
    if statistic in ("Sum", "SampleCount"):
        return float(sum(values)) if statistic == "Sum" else float(len(values))
    return max(values)


def _evaluate(backend: Any, alarm: Any, now: float) -> None:
    if alarm.metric_name not in ("HealthyHostCount", "UnHealthyHostCount") or alarm.threshold is None:
        return
    dims = frozenset((d.name, d.value) for d in alarm.dimensions)
    samples = _samples.get((alarm.namespace, dims))
    operator = _OPS.get(alarm.comparison_operator)
    if not samples or operator is None:
        return
    column = 1 if alarm.metric_name == "HealthyHostCount" else 2
    period, periods = int(alarm.period or 60), int(alarm.evaluation_periods or 1)
    needed = int(alarm.datapoints_to_alarm or periods)
    breaching = 0
    complete = 0
    for n in range(periods):
        values = [float(s[column]) for s in samples if now - (n + 1) * period < s[0] <= now - n * period]
        if not values:
            continue
        complete += 1
        if operator(_statistic(values, alarm.statistic or "Maximum"), float(alarm.threshold)):
            breaching += 1
    if complete < periods:
        return  # not enough history yet: keep the current state
    state = "ALARM" if breaching >= needed else "OK"
    if state != alarm.state_value:
        reason = (f"Threshold Crossed: {breaching} of the last {periods} datapoints "
                  f"{'were' if state == 'ALARM' else 'were not'} {alarm.comparison_operator} {alarm.threshold}"
                  " (local data plane)")
        backend.set_alarm_state(alarm.name, reason, None, state)
