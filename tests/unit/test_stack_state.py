"""The batched read of a stack and the decision which layers site.yml skips (nodestack.stack_state)."""

from __future__ import annotations

import datetime
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from nodestack import stack_state
from nodestack.stack_state import LAYERS, decide, fingerprints, read, record

NOW = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(hours=24)
SPEC = {"names": {"instance_role": "a-app", "instance_policy": "a-pol", "log_group": "/a/local",
                  "target_group": "a-app", "endpoint_group": "a-endpoints", "alarms": ["h", "l", "u"],
                  "dns_record": "app.example.test", "dns_identifier": ""},
        "tags": {"App": "a", "Project": "nodestack"}, "release": "a-local", "lb_kind": "alb",
        "launch_kind": "template", "dns_zone": "example.test", "ami_id": "ami-0123456789abcdef0"}


class NotFound(Exception):
    response = {"Error": {"Code": "NoSuchEntity"}}


class Denied(Exception):
    response = {"Error": {"Code": "AccessDenied"}}


class FakeAws:
    """Answers every describe with a fixed response (what `answers` gives, else empty), counting calls."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.made: list[str] = []

    def __call__(self, service: str) -> Any:
        fake = self

        class Client:
            def __getattr__(self, operation: str) -> Any:
                def call(**params: Any) -> Any:
                    fake.made.append(f"{service}.{operation}")
                    answer = fake.answers.get(f"{service}.{operation}", {})
                    if isinstance(answer, Exception):
                        raise answer
                    return {**answer, "ResponseMetadata": {"RequestId": str(len(fake.made))}}
                return call

        return Client()


def test_each_call_is_made_once_though_several_layers_read_it() -> None:
    aws = FakeAws({"ec2.describe_vpcs": {"Vpcs": []}})
    reader = stack_state.Reader(aws)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda layer: reader.of(layer)("ec2", "describe_vpcs", Filters=[]), ["a", "b"] * 4))
    assert aws.made == ["ec2.describe_vpcs"]
    assert all(answer == {"Vpcs": []} for answer in answers)
    key = stack_state.call_key("ec2", "describe_vpcs", {"Filters": []})
    assert reader.layers["a"] == reader.layers["b"] == [key] * 4
    aws = FakeAws({"elbv2.describe_target_groups": {"TargetGroups": [{"TargetGroupArn": "arn:tg"}]}})
    whole = read(aws, SPEC)  # the load balancer layer and verify's part both read the target group
    assert len(aws.made) == len(whole.calls) == len(set().union(*whole.layers.values()))
    assert aws.made.count("elbv2.describe_target_groups") == 1


def test_what_changes_by_itself_leaves_the_fingerprints_as_they_were() -> None:
    group = {"AutoScalingGroupName": "a-local", "MinSize": 1, "MaxSize": 2, "DesiredCapacity": 1,
             "Instances": [{"InstanceId": "i-1"}], "CreatedTime": "then"}
    def of(one: dict[str, Any]) -> dict[str, str]:
        return fingerprints(read(FakeAws({"autoscaling.describe_auto_scaling_groups": {"AutoScalingGroups": [one]}}),
                                 SPEC))

    first = of(group)
    assert of({**group, "DesiredCapacity": 2, "Instances": [{"InstanceId": "i-2"}, {"InstanceId": "i-3"}]}) == first
    third = of({**group, "MaxSize": 3})
    assert [layer for layer in LAYERS if first[layer] != third[layer]] == ["compute"]


def test_a_missing_resource_is_a_state_and_an_unreadable_one_is_not() -> None:
    missing = read(FakeAws({"iam.get_role": NotFound()}), SPEC)
    assert missing.unreadable == {}
    denied = read(FakeAws({"iam.get_role": Denied()}), SPEC)
    assert denied.unreadable == {"iam": "iam:get_role: AccessDenied"}
    found = fingerprints(denied)
    decision = decide(record("in", found, NOW, NOW), "in", found, denied.unreadable, NOW, DAY)
    assert decision.skip == [] and decision.apply == list(LAYERS) and "could not be read" in decision.why


def test_a_call_that_fails_leaves_every_layer_reading_it_unreadable() -> None:
    reader = stack_state.Reader(FakeAws({"ec2.describe_vpcs": Denied()}))
    for layer in ("a", "b"):
        reader.of(layer)("ec2", "describe_vpcs", Filters=[])
    assert set(reader.unreadable) == {"a", "b"}


@pytest.fixture
def found() -> dict[str, str]:
    return {layer: f"fp-{layer}" for layer in LAYERS}


HOUR = datetime.timedelta(hours=1)


def test_every_layer_is_skipped_when_all_match(found: dict[str, str]) -> None:
    decision = decide(record("in", found, NOW - HOUR, NOW - HOUR), "in", found, {}, NOW, DAY)
    assert (decision.skip, decision.apply, decision.why) == (list(LAYERS), [], "")


def test_from_the_first_changed_layer_every_layer_is_applied(found: dict[str, str]) -> None:
    last = record("in", {**found, "security_groups": "before"}, NOW, NOW)
    decision = decide(last, "in", found, {}, NOW, DAY)
    assert decision.skip == ["iam", "logs", "network"]
    assert decision.apply == ["security_groups", "load_balancer", "compute", "dns"]
    assert decision.why.startswith("security_groups: its resources changed")


def test_a_layer_its_run_changed_is_recorded_only_once_a_run_finds_it_settled(found: dict[str, str]) -> None:
    before = {**found, "security_groups": "drifted", "dns": "old"}
    kept = stack_state.settled(before, found)
    assert sorted(kept) == sorted(set(LAYERS) - {"security_groups", "dns"})
    decision = decide(record("in", kept, NOW, NOW), "in", found, {}, NOW, DAY)
    assert decision.skip == ["iam", "logs", "network"]
    assert decision.why == "security_groups: the last run changed it, and no run since found it settled"


def test_the_age_is_of_the_last_run_that_applied_every_layer(found: dict[str, str]) -> None:
    # runs applying some layers (a blue/green shift re-applies DNS) do not put the full run off
    partial = record("in", found, NOW - HOUR, NOW - 25 * HOUR)
    assert "longer ago than stack_converged_hours" in decide(partial, "in", found, {}, NOW, DAY).why


@pytest.mark.parametrize(("last", "inputs", "hours", "why"), [
    (None, "in", 24, "no record"),
    ("fresh", "other", 24, "the settings, the AMI or the roles changed"),
    ("fresh", "in", 0, "skipping is off"),
    ("old", "in", 24, "longer ago than stack_converged_hours"),
])
def test_nothing_is_skipped_without_a_fresh_record_of_the_same_inputs(found: dict[str, str], last: Any, inputs: str,
                                                                       hours: int, why: str) -> None:
    at = {"fresh": NOW - HOUR, "old": NOW - 25 * HOUR}
    if isinstance(last, str):
        last = record("in", found, at[last], at[last])
    decision = decide(last, inputs, found, {}, NOW, datetime.timedelta(hours=hours))
    assert decision.skip == [] and decision.apply == list(LAYERS)
    assert why in decision.why


def test_a_record_reads_back_and_a_bad_or_future_one_is_no_record(found: dict[str, str]) -> None:
    good = record("in", found, NOW, NOW - HOUR)
    assert stack_state.parse_record(json.dumps(good), NOW) == good
    for bad in ("not json", '{"at": 1}', json.dumps({**good, "version": 1}), json.dumps({**good, "layers": []}),
                json.dumps({k: v for k, v in good.items() if k != "full_at"}), None):
        assert stack_state.parse_record(bad, NOW) is None, bad
    ahead = record("in", found, NOW + DAY, NOW + DAY)  # would allow skipping for days
    assert stack_state.parse_record(json.dumps(ahead), NOW) is None


def test_what_preflight_needs_is_noted_as_the_layers_read_it() -> None:
    zone = {"Id": "/hostedzone/Z1", "Name": "example.test."}
    records = [{"Name": "app.example.test.", "Type": "A", "AliasTarget": {"DNSName": "a-local-1.elb."}}]
    aws = FakeAws({"route53.list_hosted_zones_by_name": {"HostedZones": [zone]},
                   "route53.list_resource_record_sets": {"ResourceRecordSets": records},
                   "elbv2.describe_load_balancers": {"LoadBalancers": [{"LoadBalancerArn": "arn:lb",
                                                                        "DNSName": "a-local-1.elb"}]}})
    assert stack_state.found(read(aws, SPEC)) == {"dns_zone_id": "/hostedzone/Z1", "dns_records": records,
                                                  "lb_dns_name": "a-local-1.elb"}
    other_zone = FakeAws({"route53.list_hosted_zones_by_name": {"HostedZones": [{**zone, "Name": "other.test."}]}})
    assert stack_state.found(read(other_zone, SPEC)) == {"dns_zone_id": "", "dns_records": [], "lb_dns_name": ""}
    classic = FakeAws({"elb.describe_load_balancers": {"LoadBalancerDescriptions": [{"DNSName": "c.elb"}]}})
    assert stack_state.found(read(classic, {**SPEC, "lb_kind": "classic"}))["lb_dns_name"] == "c.elb"
