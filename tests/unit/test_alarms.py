"""The data plane's load balancer metrics reach CloudWatch, and an alarm on them fires and
clears as AWS evaluates it (periods, evaluation periods, comparison)."""

from __future__ import annotations

from collections import defaultdict, deque
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from nodestack.local_cloud import alarms
from nodestack.local_cloud.fix_target_health import Observed
from nodestack.local_cloud.lb_state import LoadBalancerPlan


@pytest.fixture
def aws(moto_in_process: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(alarms, "_samples", defaultdict(lambda: deque(maxlen=3600)))
    monkeypatch.setattr(alarms, "_last_publish", 0.0)
    return lambda service: boto3.client(service, region_name="us-east-1")


def _target_group(aws: Any) -> tuple[str, dict[str, str]]:
    ec2, elb = aws("ec2"), aws("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
               for n, z in ((1, "us-east-1a"), (2, "us-east-1b"))]
    lb = elb.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elb.create_target_group(Name="web-app", Protocol="HTTP", Port=3000,
                                 VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
    elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    return tg, {"TargetGroup": tg.split(":")[-1], "LoadBalancer": lb.split(":")[-1].split("/", 1)[1]}


def _run(monkeypatch: pytest.MonkeyPatch, start: float, seconds: int, plan: LoadBalancerPlan,
         health: dict[tuple[str, str], Observed]) -> float:
    """Tick the publisher every 10 s of fake time; returns the time reached."""
    now = start
    for _ in range(seconds // 10):
        now += 10
        monkeypatch.setattr(alarms.time, "time", lambda: now)
        alarms.publish_and_evaluate(plan, health)
    return now


def test_unhealthy_hosts_reach_cloudwatch_and_the_alarm_fires_then_clears(aws: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tg, dimensions = _target_group(aws)
    watch = aws("cloudwatch")
    watch.put_metric_alarm(AlarmName="web-unhealthy", Namespace="AWS/ApplicationELB", MetricName="UnHealthyHostCount",
                           Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()], Statistic="Maximum",
                           ComparisonOperator="GreaterThanThreshold", Threshold=0.0, Period=60, EvaluationPeriods=2)
    plan = LoadBalancerPlan(registered={tg: {"i-1": 3000, "i-2": 3000}})
    sick = {(tg, "i-1"): Observed("healthy"), (tg, "i-2"): Observed("unhealthy", "Target.Timeout")}
    now = _run(monkeypatch, 1_000_000.0, 60, plan, sick)
    # 1 of 2 periods
    assert watch.describe_alarms(AlarmNames=["web-unhealthy"])["MetricAlarms"][0]["StateValue"] != "ALARM"
    now = _run(monkeypatch, now, 70, plan, sick)
    assert watch.describe_alarms(AlarmNames=["web-unhealthy"])["MetricAlarms"][0]["StateValue"] == "ALARM"
    stats = watch.get_metric_statistics(Namespace="AWS/ApplicationELB", MetricName="UnHealthyHostCount",
                                        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
                                        StartTime=datetime.now(timezone.utc) - timedelta(minutes=10),
                                        EndTime=datetime.now(timezone.utc) + timedelta(minutes=1),
                                        Period=60, Statistics=["Maximum"])["Datapoints"]
    assert stats and max(d["Maximum"] for d in stats) == 1.0
    well = {(tg, "i-1"): Observed("healthy"), (tg, "i-2"): Observed("healthy")}
    _run(monkeypatch, now, 130, plan, well)
    assert watch.describe_alarms(AlarmNames=["web-unhealthy"])["MetricAlarms"][0]["StateValue"] == "OK"


def test_alarms_on_metrics_without_local_data_keep_their_state(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tg, _ = _target_group(aws)
    watch = aws("cloudwatch")
    watch.put_metric_alarm(AlarmName="cpu-high", Namespace="AWS/EC2", MetricName="CPUUtilization", Statistic="Average",
                           ComparisonOperator="GreaterThanThreshold", Threshold=70.0, Period=60, EvaluationPeriods=1)
    before = watch.describe_alarms(AlarmNames=["cpu-high"])["MetricAlarms"][0]
    _run(monkeypatch, 2_000_000.0, 180, LoadBalancerPlan(registered={tg: {"i-1": 3000}}),
         {(tg, "i-1"): Observed("healthy")})
    after = watch.describe_alarms(AlarmNames=["cpu-high"])["MetricAlarms"][0]
    assert after["StateValue"] == before["StateValue"]
    assert after["StateUpdatedTimestamp"] == before["StateUpdatedTimestamp"]
