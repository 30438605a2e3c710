"""Each emulator fix gives the AWS-documented behaviour; plain moto shows the gap it closes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from nodestack.local_cloud import fixes, server
from tests.conftest import client as _client
from tests.conftest import endpoint_in


@pytest.fixture(scope="module")
def plain_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second endpoint with no fixes, to prove each test fails without its fix."""
    with endpoint_in(tmp_path_factory.mktemp("plain"), fixes=False) as endpoint:
        yield endpoint.url


def _group_with_metrics(asg, name: str) -> None:  # type: ignore[no-untyped-def]
    asg.create_launch_configuration(LaunchConfigurationName=name, ImageId="ami-785db401", InstanceType="t3.micro")
    asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName=name, MinSize=0, MaxSize=1,
                                  AvailabilityZones=["us-east-1a"])
    asg.enable_metrics_collection(AutoScalingGroupName=name, Granularity="1Minute",
                                  Metrics=["GroupMinSize", "GroupMaxSize", "GroupDesiredCapacity"])


def _enabled(asg, name: str) -> set[str]:  # type: ignore[no-untyped-def]
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return {m["Metric"] for m in group["EnabledMetrics"]}


def test_every_fix_is_listed_in_the_docs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "local-cloud.md").read_text()
    assert all(f"`{fix.name}`" in docs for fix in fixes.FIXES)


def test_disable_metrics_collection_removes_the_named_metrics(local_cloud: server.Endpoint) -> None:
    asg = _client(local_cloud.url, "autoscaling")
    _group_with_metrics(asg, "fix-metrics-some")
    asg.disable_metrics_collection(AutoScalingGroupName="fix-metrics-some", Metrics=["GroupMinSize"])
    assert _enabled(asg, "fix-metrics-some") == {"GroupMaxSize", "GroupDesiredCapacity"}


def test_disable_metrics_collection_without_metrics_disables_all(local_cloud: server.Endpoint) -> None:
    asg = _client(local_cloud.url, "autoscaling")
    _group_with_metrics(asg, "fix-metrics-all")
    asg.disable_metrics_collection(AutoScalingGroupName="fix-metrics-all")
    assert _enabled(asg, "fix-metrics-all") == set()


def test_disable_metrics_collection_of_unknown_group_is_a_validation_error(local_cloud: server.Endpoint) -> None:
    with pytest.raises(ClientError) as err:
        _client(local_cloud.url, "autoscaling").disable_metrics_collection(AutoScalingGroupName="no-such-group")
    assert err.value.response["Error"]["Code"] == "ValidationError"


def test_elb_attributes_of_missing_lb_is_load_balancer_not_found(local_cloud: server.Endpoint) -> None:
    with pytest.raises(ClientError) as err:
        _client(local_cloud.url, "elb").describe_load_balancer_attributes(LoadBalancerName="missing")
    assert err.value.response["Error"]["Code"] == "LoadBalancerNotFound"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_elb_attributes_of_existing_lb_still_answer(local_cloud: server.Endpoint) -> None:
    elb = _client(local_cloud.url, "elb")
    elb.create_load_balancer(LoadBalancerName="present", AvailabilityZones=["us-east-1a"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 3000}])
    attrs = elb.describe_load_balancer_attributes(LoadBalancerName="present")["LoadBalancerAttributes"]
    assert "CrossZoneLoadBalancing" in attrs


@pytest.mark.parametrize("call", ["disable_metrics", "elb_attributes"])
def test_plain_moto_still_has_the_gap(plain_moto: str, call: str) -> None:
    """If this fails, moto fixed the gap upstream: drop the matching fix."""
    with pytest.raises((ClientError, ResponseParserError)) as err:
        if call == "disable_metrics":
            asg = _client(plain_moto, "autoscaling")
            _group_with_metrics(asg, "plain")
            asg.disable_metrics_collection(AutoScalingGroupName="plain")
        else:
            _client(plain_moto, "elb").describe_load_balancer_attributes(LoadBalancerName="missing")
    assert "500" in str(err.value)
