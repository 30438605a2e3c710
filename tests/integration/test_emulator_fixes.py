"""Each emulator fix gives the AWS-documented behaviour; plain moto shows the gap it closes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from moto.iam.access_control import IAMRequestBase
from moto.ssm.responses import SimpleSystemManagerResponse

from nodestack import names, permissions
from nodestack.local_cloud import (
    base_image,
    fix_asg_launch_authorization,
    fix_ec2_authorization,
    fix_iam_enforcement,
    fixes,
    identities,
    server,
)
from nodestack.local_cloud.ami_images import ami_image
from nodestack.local_cloud.instances import podman
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


def _subscription_counts(url: str, name: str) -> tuple[str, str]:
    sns = _client(url, "sns")
    topic = sns.create_topic(Name=name)["TopicArn"]
    before = sns.get_topic_attributes(TopicArn=topic)["Attributes"]["SubscriptionsConfirmed"]
    for queue in ("a", "b"):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:us-east-1:123456789012:{name}-{queue}")
    attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attributes["SubscriptionsPending"] == "0"
    return before, attributes["SubscriptionsConfirmed"]


def test_a_topics_confirmed_subscriptions_are_counted(local_cloud: server.Endpoint) -> None:
    assert _subscription_counts(local_cloud.url, "counted") == ("0", "2")


def test_plain_moto_counts_no_subscription(plain_moto: str) -> None:
    """If this fails, moto fixed the gap upstream: drop sns-subscription-counts."""
    assert _subscription_counts(plain_moto, "uncounted") == ("0", "0")


def _template_with_versions(ec2, name: str, count: int) -> str:  # type: ignore[no-untyped-def]
    template = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-785db401"})
    for _ in range(count - 1):
        ec2.create_launch_template_version(LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-785db401"})
    return str(template["LaunchTemplate"]["LaunchTemplateId"])


def test_delete_launch_template_versions(local_cloud: server.Endpoint) -> None:
    ec2 = _client(local_cloud.url, "ec2")
    _template_with_versions(ec2, "fix-lt-versions", 3)
    result = ec2.delete_launch_template_versions(LaunchTemplateName="fix-lt-versions", Versions=["1", "2", "9"])
    # version 1 is the default: refused, as AWS does
    assert [v["VersionNumber"] for v in result["SuccessfullyDeletedLaunchTemplateVersions"]] == [2]
    refused = {v["VersionNumber"]: v["ResponseError"]["Code"]
               for v in result["UnsuccessfullyDeletedLaunchTemplateVersions"]}
    assert refused == {1: "unexpectedError", 9: "launchTemplateVersionDoesNotExist"}
    left = ec2.describe_launch_template_versions(LaunchTemplateName="fix-lt-versions")["LaunchTemplateVersions"]
    assert sorted(v["VersionNumber"] for v in left) == [1, 3]
    # numbers are never reused
    new = ec2.create_launch_template_version(LaunchTemplateName="fix-lt-versions",
                                             LaunchTemplateData={"ImageId": "ami-785db401"})
    assert new["LaunchTemplateVersion"]["VersionNumber"] == 4


def _tagged_template(ec2: Any, name: str) -> list[Any]:
    ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": "ami-785db401",
                            "TagSpecifications": [{"ResourceType": "instance",
                                                   "Tags": [{"Key": "Name", "Value": name}]}]},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "Project", "Value": "nodestack"}]}])
    version = ec2.describe_launch_template_versions(LaunchTemplateName=name)["LaunchTemplateVersions"][0]
    return [t["ResourceType"] for t in version["LaunchTemplateData"]["TagSpecifications"]]


def test_template_tags_stay_out_of_the_version_data(local_cloud: server.Endpoint) -> None:
    ec2 = _client(local_cloud.url, "ec2")
    assert _tagged_template(ec2, "fix-lt-tags") == ["instance"]
    template = ec2.describe_launch_templates(LaunchTemplateNames=["fix-lt-tags"])["LaunchTemplates"][0]
    assert template["Tags"] == [{"Key": "Project", "Value": "nodestack"}]


def test_plain_moto_copies_template_tags_into_the_version(plain_moto: str) -> None:
    assert _tagged_template(_client(plain_moto, "ec2"), "plain-lt-tags") == ["instance", "launch-template"]


def test_plain_moto_lacks_delete_launch_template_versions(plain_moto: str) -> None:
    ec2 = _client(plain_moto, "ec2")
    _template_with_versions(ec2, "plain-lt-versions", 2)
    with pytest.raises((ClientError, ResponseParserError)):
        ec2.delete_launch_template_versions(LaunchTemplateName="plain-lt-versions", Versions=["2"])


def _group_on_template(local_url: str, name: str, size: int) -> tuple:
    ec2, asg = _client(local_url, "ec2"), _client(local_url, "autoscaling")
    ec2.create_launch_template(LaunchTemplateName=name,
                               LaunchTemplateData={"ImageId": "ami-785db401", "InstanceType": "t3.micro"})
    asg.create_auto_scaling_group(AutoScalingGroupName=name,
                                  LaunchTemplate={"LaunchTemplateName": name, "Version": "$Default"},
                                  MinSize=size, MaxSize=size * 2, DesiredCapacity=size,
                                  AvailabilityZones=["us-east-1a"])
    # user data in the new version, as playbooks/compute.yml gives it
    ec2.create_launch_template_version(LaunchTemplateName=name, SourceVersion="1",
                                       LaunchTemplateData={"ImageId": "ami-785db401", "InstanceType": "t3.small",
                                                           "UserData": "IyEvYmluL2Jhc2gK"})
    ec2.modify_launch_template(LaunchTemplateName=name, DefaultVersion="2")
    return ec2, asg


def _instances(asg, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return {i["InstanceId"]: i["InstanceType"] for i in group["Instances"]}


def _refresh_until_done(asg: Any, name: str, before: set[str], size: int, timeout: float = 30) -> tuple[dict, list]:
    """Poll a refresh (advanced by the data plane every second) to its end; returns the last
    description and the distinct (status, old instances left) seen on the way."""
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refresh = asg.describe_instance_refreshes(AutoScalingGroupName=name)["InstanceRefreshes"][0]
        current = _instances(asg, name)
        assert len(current) >= size  # never below desired capacity
        step = (refresh["Status"], len(set(current) & before))
        if not seen or seen[-1] != step:
            seen.append(step)
        if refresh["Status"] not in ("Pending", "InProgress", "Cancelling", "RollbackInProgress"):
            return refresh, seen
        time.sleep(0.2)
    raise AssertionError(f"refresh of {name} did not end within {timeout}s: {seen}")


def test_instance_refresh_replaces_in_batches_keeping_min_healthy(local_cloud: server.Endpoint) -> None:
    _, asg = _group_on_template(local_cloud.url, "fix-refresh", 4)
    before = _instances(asg, "fix-refresh")
    assert set(before.values()) == {"t3.micro"}
    refresh_id = asg.start_instance_refresh(AutoScalingGroupName="fix-refresh",
                                            Preferences={"MinHealthyPercentage": 50})["InstanceRefreshId"]
    with pytest.raises(ClientError) as err:
        asg.start_instance_refresh(AutoScalingGroupName="fix-refresh")
    assert err.value.response["Error"]["Code"] == "InstanceRefreshInProgress"
    refresh, seen = _refresh_until_done(asg, "fix-refresh", set(before), 4)
    assert refresh["InstanceRefreshId"] == refresh_id and refresh["PercentageComplete"] == 100
    # 50 % of 4 kept in service: two old instances replaced per batch, never more
    assert {old for _, old in seen} <= {4, 2, 0}, seen
    assert seen[-1] == ("Successful", 0)
    assert set(_instances(asg, "fix-refresh").values()) == {"t3.small"}


def test_instance_refresh_skip_matching_and_cancel(local_cloud: server.Endpoint) -> None:
    ec2, asg = _group_on_template(local_cloud.url, "fix-refresh-skip", 2)
    before = set(_instances(asg, "fix-refresh-skip"))
    asg.start_instance_refresh(AutoScalingGroupName="fix-refresh-skip", Preferences={"MinHealthyPercentage": 100})
    refresh, seen = _refresh_until_done(asg, "fix-refresh-skip", before, 2)
    assert {old for _, old in seen} <= {2, 1, 0}, seen  # 100 %: one at a time
    # every instance now matches: a SkipMatching refresh has nothing to replace
    asg.start_instance_refresh(AutoScalingGroupName="fix-refresh-skip", Preferences={"SkipMatching": True})
    refresh, _ = _refresh_until_done(asg, "fix-refresh-skip", set(), 2)
    assert (refresh["Status"], refresh["InstancesToUpdate"]) == ("Successful", 0)
    with pytest.raises(ClientError) as err:
        asg.cancel_instance_refresh(AutoScalingGroupName="fix-refresh-skip")
    assert err.value.response["Error"]["Code"] == "ActiveInstanceRefreshNotFound"
    asg.start_instance_refresh(AutoScalingGroupName="fix-refresh-skip")
    asg.cancel_instance_refresh(AutoScalingGroupName="fix-refresh-skip")
    refresh, _ = _refresh_until_done(asg, "fix-refresh-skip", set(), 2)
    assert refresh["Status"] == "Cancelled"


def _group_in_two_zones(url: str, name: str, size: int, policies: list[str] | None = None) -> tuple:
    ec2, asg = _client(url, "ec2"), _client(url, "autoscaling")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{n}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for n, zone in ((1, "us-east-1a"), (2, "us-east-1b"))]
    ec2.create_launch_template(LaunchTemplateName=name,
                               LaunchTemplateData={"ImageId": "ami-785db401", "InstanceType": "t3.micro"})
    asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": name},
                                  MinSize=0, MaxSize=8, DesiredCapacity=size, VPCZoneIdentifier=",".join(subnets),
                                  **({"TerminationPolicies": policies} if policies else {}))
    return ec2, asg


def _zones(asg, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return sorted(i["AvailabilityZone"] for i in group["Instances"])


def test_instances_spread_over_the_groups_zones(local_cloud: server.Endpoint) -> None:
    _, asg = _group_in_two_zones(local_cloud.url, "fix-zones", 2)
    assert _zones(asg, "fix-zones") == ["us-east-1a", "us-east-1b"]
    asg.set_desired_capacity(AutoScalingGroupName="fix-zones", DesiredCapacity=4)
    assert _zones(asg, "fix-zones") == ["us-east-1a", "us-east-1a", "us-east-1b", "us-east-1b"]
    asg.set_desired_capacity(AutoScalingGroupName="fix-zones", DesiredCapacity=3)
    assert sorted(set(_zones(asg, "fix-zones"))) == ["us-east-1a", "us-east-1b"]  # scale-in from the busier zone


def test_scale_in_honours_termination_policies(local_cloud: server.Endpoint) -> None:
    _, asg = _group_in_two_zones(local_cloud.url, "fix-policies", 2, ["NewestInstance"])
    first = set(_instances(asg, "fix-policies"))
    time.sleep(1.1)  # launch times have second resolution
    asg.set_desired_capacity(AutoScalingGroupName="fix-policies", DesiredCapacity=4)
    asg.set_desired_capacity(AutoScalingGroupName="fix-policies", DesiredCapacity=2)
    assert set(_instances(asg, "fix-policies")) == first  # the newest went first
    asg.update_auto_scaling_group(AutoScalingGroupName="fix-policies", TerminationPolicies=["OldestInstance"])
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["fix-policies"])["AutoScalingGroups"][0]
    assert group["TerminationPolicies"] == ["OldestInstance"]
    time.sleep(1.1)
    asg.set_desired_capacity(AutoScalingGroupName="fix-policies", DesiredCapacity=4)
    asg.set_desired_capacity(AutoScalingGroupName="fix-policies", DesiredCapacity=2)
    assert not set(_instances(asg, "fix-policies")) & first  # the oldest went first


def test_plain_moto_puts_every_instance_in_the_first_zone(plain_moto: str) -> None:
    _, asg = _group_in_two_zones(plain_moto, "plain-zones", 4)
    assert _zones(asg, "plain-zones") == ["us-east-1a"] * 4


def test_plain_moto_lacks_instance_refresh(plain_moto: str) -> None:
    _, asg = _group_on_template(plain_moto, "plain-refresh", 1)
    with pytest.raises((ClientError, ResponseParserError)):
        asg.start_instance_refresh(AutoScalingGroupName="plain-refresh")


def _imds_image(url: str) -> tuple[object, str]:
    ec2 = _client(url, "ec2")
    instance = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=instance, Name=f"imds-{instance}")["ImageId"]
    ec2.modify_image_attribute(ImageId=ami, ImdsSupport={"Value": "v2.0"})
    return ec2, ami


def test_images_keep_imds_support(local_cloud: server.Endpoint) -> None:
    ec2, ami = _imds_image(local_cloud.url)
    assert ec2.describe_images(ImageIds=[ami])["Images"][0]["ImdsSupport"] == "v2.0"  # type: ignore[attr-defined]
    attribute = ec2.describe_image_attribute(ImageId=ami, Attribute="imdsSupport")  # type: ignore[attr-defined]
    assert attribute["ImdsSupport"] == {"Value": "v2.0"}
    with pytest.raises(ClientError) as err:
        ec2.modify_image_attribute(ImageId=ami, ImdsSupport={"Value": "v1.0"})  # type: ignore[attr-defined]
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_plain_moto_drops_imds_support(plain_moto: str) -> None:
    ec2, ami = _imds_image(plain_moto)
    assert "ImdsSupport" not in ec2.describe_images(ImageIds=[ami])["Images"][0]  # type: ignore[attr-defined]


def _described_image(url: str) -> str:
    ec2 = _client(url, "ec2")
    instance = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=instance, Name=f"described-{instance}", Description="old")["ImageId"]
    ec2.modify_image_attribute(ImageId=ami, Description={"Value": "nodeapp dev app server"})
    return str(ec2.describe_images(ImageIds=[ami])["Images"][0]["Description"])


def test_an_images_description_is_changed(local_cloud: server.Endpoint) -> None:
    assert _described_image(local_cloud.url) == "nodeapp dev app server"


def test_plain_moto_keeps_the_old_description(plain_moto: str) -> None:
    assert _described_image(plain_moto) == "old"


def _shared_and_unshared_image(url: str, with_account: str) -> tuple[str, str, Any]:
    """Two images of the default account, the first shared with with_account; that account's EC2 client."""
    ec2 = _client(url, "ec2")
    instance = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    shared, unshared = (ec2.create_image(InstanceId=instance, Name=f"{name}-{instance}")["ImageId"]
                        for name in ("shared", "unshared"))
    ec2.create_tags(Resources=[shared], Tags=[{"Key": "validated", "Value": "true"}])
    ec2.modify_image_attribute(ImageId=shared, LaunchPermission={"Add": [{"UserId": with_account}]})
    keys = _client(url, "sts").assume_role(RoleArn=f"arn:aws:iam::{with_account}:role/consumer",
                                           RoleSessionName="consumer")["Credentials"]
    consumer = _client(url, "ec2", {"AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
                                    "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"]})
    return shared, unshared, consumer


def test_a_shared_image_is_seen_and_launched_by_the_account_it_is_shared_with(local_cloud: server.Endpoint) -> None:
    shared, unshared, consumer = _shared_and_unshared_image(local_cloud.url, "210987654321")
    seen = consumer.describe_images(ImageIds=[shared])["Images"][0]
    assert seen["OwnerId"] == "123456789012" and not seen.get("Tags")  # the owner's tags are its own
    by_filter = consumer.describe_images(Filters=[{"Name": "image-id", "Values": [shared, unshared]}])["Images"]
    assert [i["ImageId"] for i in by_filter] == [shared]
    assert consumer.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [shared]}])["Images"] == []
    assert consumer.describe_images(ImageIds=[shared], Owners=["self"])["Images"] == []  # ImageIds narrowed too
    assert consumer.run_instances(ImageId=shared, MinCount=1, MaxCount=1)["Instances"][0]["ImageId"] == shared
    # the consumer's tags on the shared image are its own: the owner neither sees them nor loses its own
    consumer.create_tags(Resources=[shared], Tags=[{"Key": "validated", "Value": "consumer"}])
    assert consumer.describe_images(ImageIds=[shared])["Images"][0]["Tags"] == [{"Key": "validated",
                                                                                "Value": "consumer"}]
    assert [i["ImageId"] for i in consumer.describe_images(
        Filters=[{"Name": "tag:validated", "Values": ["consumer"]}])["Images"]] == [shared]
    owner = _client(local_cloud.url, "ec2").describe_images(ImageIds=[shared])["Images"][0]
    assert owner["Tags"] == [{"Key": "validated", "Value": "true"}]
    for call in (lambda: consumer.describe_images(ImageIds=[unshared]),
                 lambda: consumer.run_instances(ImageId=unshared, MinCount=1, MaxCount=1),
                 lambda: consumer.create_tags(Resources=[unshared], Tags=[{"Key": "k", "Value": "v"}])):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


def test_plain_moto_hides_shared_images_and_launches_unshared_ones(plain_moto: str) -> None:
    shared, unshared, consumer = _shared_and_unshared_image(plain_moto, "210987654321")
    assert consumer.describe_images(Filters=[{"Name": "image-id", "Values": [shared]}])["Images"] == []
    assert consumer.run_instances(ImageId=unshared, MinCount=1, MaxCount=1)["Instances"][0]["ImageId"] == unshared


def _instances_from_template_and_configuration(url: str, name: str) -> list[dict]:
    """One instance from a launch template (Auto Scaling), one from a launch configuration, one
    from RunInstances with the template and its own profile: what each got."""
    ec2, asg, iam = _client(url, "ec2"), _client(url, "autoscaling"), _client(url, "iam")
    for profile in (f"{name}-lt", f"{name}-lc", f"{name}-own"):
        iam.create_role(RoleName=profile, AssumeRolePolicyDocument="{}")
        iam.create_instance_profile(InstanceProfileName=profile)
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=profile)
    ec2.create_launch_template(LaunchTemplateName=f"{name}-lt", LaunchTemplateData={
        "ImageId": "ami-785db401", "IamInstanceProfile": {"Name": f"{name}-lt"},
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"}})
    asg.create_launch_configuration(LaunchConfigurationName=f"{name}-lc", ImageId="ami-785db401",
                                    InstanceType="t3.micro", IamInstanceProfile=f"{name}-lc",
                                    MetadataOptions={"HttpTokens": "required"})
    for group, launch in ((f"{name}-lt", {"LaunchTemplate": {"LaunchTemplateName": f"{name}-lt"}}),
                          (f"{name}-lc", {"LaunchConfigurationName": f"{name}-lc"})):
        asg.create_auto_scaling_group(AutoScalingGroupName=group, MinSize=1, MaxSize=1,
                                      AvailabilityZones=["us-east-1a"], **launch)
    ids = [asg.describe_auto_scaling_groups(AutoScalingGroupNames=[g])["AutoScalingGroups"][0]["Instances"][0][
        "InstanceId"] for g in (f"{name}-lt", f"{name}-lc")]
    ids += [ec2.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateName": f"{name}-lt"},
                              IamInstanceProfile={"Name": f"{name}-own"})["Instances"][0]["InstanceId"]]
    found = {i["InstanceId"]: i
             for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]}
    return [found[i] for i in ids]


def _profile_and_tokens(instance: dict) -> tuple[str | None, str]:
    arn = (instance.get("IamInstanceProfile") or {}).get("Arn")
    return (arn.rsplit("/", 1)[-1] if arn else None), instance["MetadataOptions"]["HttpTokens"]


def test_launched_instances_get_the_profile_and_metadata_options_they_were_launched_with(
        local_cloud: server.Endpoint) -> None:
    described = _instances_from_template_and_configuration(local_cloud.url, "launch-settings")
    assert [_profile_and_tokens(i) for i in described] == [
        ("launch-settings-lt", "required"), ("launch-settings-lc", "required"),
        ("launch-settings-own", "required")]  # the call's own profile wins over the template's


def test_plain_moto_drops_the_templates_profile_and_metadata_options(plain_moto: str) -> None:
    described = _instances_from_template_and_configuration(plain_moto, "launch-settings")
    assert _profile_and_tokens(described[0]) == (None, "optional")


def _new_alb_attributes(url: str) -> dict[str, str]:
    ec2, elb = _client(url, "ec2"), _client(url, "elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.8.{n}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for n, zone in ((1, "us-east-1a"), (2, "us-east-1b"))]
    arn = elb.create_load_balancer(Name=f"attrs-{vpc[-6:]}", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    return {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}


def test_a_new_alb_has_every_documented_attribute(local_cloud: server.Endpoint) -> None:
    attributes = _new_alb_attributes(local_cloud.url)
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "false"
    assert attributes["access_logs.s3.enabled"] == "false"


def test_plain_moto_lacks_alb_attributes(plain_moto: str) -> None:
    assert "routing.http.drop_invalid_header_fields.enabled" not in _new_alb_attributes(plain_moto)


def test_target_health_is_what_the_data_plane_sees(local_cloud: server.Endpoint) -> None:
    """A target whose instance's AMI has a local image is `initial` until HAProxy passes it;
    moto says `healthy` at once."""
    ec2, elb = _client(local_cloud.url, "ec2"), _client(local_cloud.url, "elbv2")
    builder = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=builder, Name=f"health-{builder}")["ImageId"]
    image = ami_image(str(local_cloud.port), ami)
    podman("tag", base_image.IMAGE, image)  # boots, but nothing answers on port 3000
    try:
        vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
        group = elb.create_target_group(Name=f"health-{vpc[-6:]}", Protocol="HTTP", Port=3000, VpcId=vpc,
                                        HealthCheckPath="/health", HealthCheckIntervalSeconds=5,
                                        UnhealthyThresholdCount=2)["TargetGroups"][0]["TargetGroupArn"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{n}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
                   for n, z in ((1, "us-east-1a"), (2, "us-east-1b"))]
        lb = elb.create_load_balancer(Name=f"health-{vpc[-6:]}", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=8080,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
        instance = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        elb.register_targets(TargetGroupArn=group, Targets=[{"Id": instance}])

        def state() -> dict[str, str]:
            return elb.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"][0]["TargetHealth"]
        assert state()["State"] == "initial"
        deadline = time.monotonic() + 60
        while state()["State"] != "unhealthy":
            assert time.monotonic() < deadline, state()
            time.sleep(0.5)
        assert state()["Reason"].startswith("Target.")
        ec2.terminate_instances(InstanceIds=[instance])
    finally:
        podman("rmi", image, check=False)


def test_a_refresh_whose_new_instances_fail_rolls_back(local_cloud: server.Endpoint) -> None:
    """Version 2 runs an image whose app never answers: its instance fails the health check,
    Auto Scaling replaces it, the refresh fails and rolls back to version 1."""
    ec2, elb, scaling = (_client(local_cloud.url, s) for s in ("ec2", "elbv2", "autoscaling"))
    builder = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    broken = ec2.create_image(InstanceId=builder, Name=f"broken-{builder}")["ImageId"]
    image = ami_image(str(local_cloud.port), broken)
    podman("tag", base_image.IMAGE, image)  # boots, but nothing answers the health check
    try:
        vpc = ec2.create_vpc(CidrBlock="10.6.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.6.{n}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
                   for n, z in ((1, "us-east-1a"), (2, "us-east-1b"))]
        group_arn = elb.create_target_group(Name="rollback", Protocol="HTTP", Port=3000, VpcId=vpc,
                                            HealthCheckIntervalSeconds=5, UnhealthyThresholdCount=2,
                                            HealthyThresholdCount=2)["TargetGroups"][0]["TargetGroupArn"]
        lb = elb.create_load_balancer(Name="rollback", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=8081,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": group_arn}])
        ec2.create_launch_template(LaunchTemplateName="rollback",
                                   LaunchTemplateData={"ImageId": "ami-785db401", "InstanceType": "t3.micro"})
        ec2.create_launch_template_version(LaunchTemplateName="rollback", SourceVersion="1",
                                           LaunchTemplateData={"ImageId": broken})
        scaling.create_auto_scaling_group(
            AutoScalingGroupName="rollback", LaunchTemplate={"LaunchTemplateName": "rollback", "Version": "1"},
            MinSize=2, MaxSize=4, DesiredCapacity=2, VPCZoneIdentifier=",".join(subnets),
            TargetGroupARNs=[group_arn], HealthCheckType="ELB", HealthCheckGracePeriod=3)
        with pytest.raises(ClientError) as err:  # AWS: rollback needs a desired configuration
            scaling.start_instance_refresh(AutoScalingGroupName="rollback", Preferences={"AutoRollback": True})
        assert err.value.response["Error"]["Code"] == "ValidationError"
        scaling.start_instance_refresh(
            AutoScalingGroupName="rollback",
            DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateName": "rollback", "Version": "2"}},
            Preferences={"MinHealthyPercentage": 50, "InstanceWarmup": 0, "AutoRollback": True})
        refresh, seen = _refresh_until_done(scaling, "rollback", set(_instances(scaling, "rollback")), 2, timeout=120)
        assert refresh["Status"] == "RollbackSuccessful", (refresh, seen)
        assert "failed" in refresh["RollbackDetails"]["RollbackReason"]
        group = scaling.describe_auto_scaling_groups(AutoScalingGroupNames=["rollback"])["AutoScalingGroups"][0]
        assert group["LaunchTemplate"]["Version"] == "1"
        images = {i["ImageId"]
                  for r in ec2.describe_instances(
                      InstanceIds=[i["InstanceId"] for i in group["Instances"]])["Reservations"]
                  for i in r["Instances"]}
        assert images == {"ami-785db401"}
        scaling.start_instance_refresh(AutoScalingGroupName="rollback")  # no desired configuration
        with pytest.raises(ClientError) as err:
            scaling.rollback_instance_refresh(AutoScalingGroupName="rollback")
        assert err.value.response["Error"]["Code"] == "IrreversibleInstanceRefresh"
    finally:
        podman("rmi", image, check=False)


def _nat_gateway_tag_types(url: str) -> tuple[list[str], list[dict[str, str]]]:
    """A tagged NAT gateway: each tag's ResourceType, and what a resource-type=natgateway filter finds."""
    ec2 = _client(url, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.0.0/24")["Subnet"]["SubnetId"]
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip, TagSpecifications=[
        {"ResourceType": "natgateway", "Tags": [{"Key": "Name", "Value": "fix-tags"}]}])["NatGateway"]["NatGatewayId"]
    ec2.create_tags(Resources=[eip], Tags=[{"Key": "Name", "Value": "fix-tags"}])
    types = [t["ResourceType"] for t in ec2.describe_tags(
        Filters=[{"Name": "resource-id", "Values": [nat, eip]}])["Tags"]]
    found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [nat]},
                                       {"Name": "resource-type", "Values": ["natgateway"]}])["Tags"]
    return sorted(types), found


def test_describe_tags_names_nat_gateways_and_elastic_ips_as_aws_does(local_cloud: server.Endpoint) -> None:
    types, found = _nat_gateway_tag_types(local_cloud.url)
    assert types == ["elastic-ip", "natgateway"]
    assert [(t["Key"], t["Value"]) for t in found] == [("Name", "fix-tags")]


def test_plain_moto_names_nat_gateways_its_own_way(plain_moto: str) -> None:
    types, found = _nat_gateway_tag_types(plain_moto)
    assert types == ["nat-gateway", "vpc-elastic-ip"] and found == []


ACCOUNT = "arn:aws:iam::123456789012"


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _simulated_user(url: str, name: str) -> tuple[Any, str]:
    """A deployer-like user: its own policy allows ec2:Describe*, an attached managed policy
    iam:PassRole on the app's roles, and its group denies ec2:DescribeVpcs."""
    iam = _client(url, "iam")
    user = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(UserName=name, PolicyName="describe", PolicyDocument=_policy(
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}))
    managed = iam.create_policy(PolicyName=f"{name}-pass-role", PolicyDocument=_policy(
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"{ACCOUNT}:role/nodeapp-*"}))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=managed)
    iam.create_group(GroupName=f"{name}-group")
    iam.add_user_to_group(GroupName=f"{name}-group", UserName=name)
    iam.put_group_policy(GroupName=f"{name}-group", PolicyName="no-vpcs", PolicyDocument=_policy(
        {"Effect": "Deny", "Action": "EC2:describevpcs", "Resource": "*"}))  # action names are case-insensitive
    return iam, user


def test_simulate_principal_policy_of_a_user_its_managed_and_group_policies(local_cloud: server.Endpoint) -> None:
    iam, user = _simulated_user(local_cloud.url, "sim-deployer")
    results = iam.simulate_principal_policy(
        PolicySourceArn=user, ActionNames=["ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:CreateVpc"])
    assert not results["IsTruncated"]
    decided = {r["EvalActionName"]: (r["EvalDecision"], r["MatchedStatements"]) for r in results["EvaluationResults"]}
    assert decided == {
        "ec2:DescribeSubnets": ("allowed", [{"SourcePolicyId": "describe", "SourcePolicyType": "user"}]),
        # the explicit deny wins and is the only statement shown
        "ec2:DescribeVpcs": ("explicitDeny", [{"SourcePolicyId": "no-vpcs", "SourcePolicyType": "group"}]),
        "ec2:CreateVpc": ("implicitDeny", [])}
    # one result per action: the most restrictive decision on top, each resource's own beneath
    passed, = iam.simulate_principal_policy(
        PolicySourceArn=user, ActionNames=["iam:PassRole"],
        ResourceArns=[f"{ACCOUNT}:role/nodeapp-dev-app", f"{ACCOUNT}:role/other"])["EvaluationResults"]
    assert passed["EvalDecision"] == "implicitDeny"
    assert [(r["EvalResourceName"], r["EvalResourceDecision"], r["MatchedStatements"])
            for r in passed["ResourceSpecificResults"]] == [
        (f"{ACCOUNT}:role/nodeapp-dev-app", "allowed",
         [{"SourcePolicyId": "sim-deployer-pass-role", "SourcePolicyType": "user-managed"}]),
        (f"{ACCOUNT}:role/other", "implicitDeny", [])]


def test_simulate_principal_policy_of_a_role_with_not_resource(local_cloud: server.Endpoint) -> None:
    iam = _client(local_cloud.url, "iam")
    role = iam.create_role(RoleName="sim-app", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    iam.put_role_policy(RoleName="sim-app", PolicyName="objects", PolicyDocument=_policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secrets/*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::nodeapp-*", "arn:aws:s3:::secrets/*"]}))
    result, = iam.simulate_principal_policy(
        PolicySourceArn=role, ActionNames=["s3:GetObject"],
        ResourceArns=["arn:aws:s3:::nodeapp-assets/app.js", "arn:aws:s3:::secrets/key", "arn:aws:s3:::other/x"],
    )["EvaluationResults"]
    assert result["EvalDecision"] == "explicitDeny"
    assert [r["EvalResourceDecision"] for r in result["ResourceSpecificResults"]] == [
        "allowed", "implicitDeny", "explicitDeny"]
    assert result["ResourceSpecificResults"][0]["MatchedStatements"] == [
        {"SourcePolicyId": "objects", "SourcePolicyType": "role"}]


def test_simulate_principal_policy_reports_missing_context_values(local_cloud: server.Endpoint) -> None:
    iam, user = _simulated_user(local_cloud.url, "sim-context")
    in_region = _policy({"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*",
                         "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}})

    def run_instances(**context: Any) -> dict[str, Any]:
        result: dict[str, Any] = iam.simulate_principal_policy(
            PolicySourceArn=user, ActionNames=["ec2:RunInstances"], PolicyInputList=[in_region],
            **context)["EvaluationResults"][0]
        return result
    missing = run_instances()
    assert (missing["EvalDecision"], missing["MissingContextValues"]) == ("implicitDeny", ["aws:RequestedRegion"])
    given = run_instances(ContextEntries=[{"ContextKeyName": "aws:RequestedRegion",
                                           "ContextKeyValues": ["eu-west-1"], "ContextKeyType": "string"}])
    assert (given["EvalDecision"], given["MissingContextValues"]) == ("allowed", [])
    assert given["MatchedStatements"] == [{"SourcePolicyId": "PolicyInputList.1"}]


def test_simulate_principal_policy_errors(local_cloud: server.Endpoint) -> None:
    with pytest.raises(ClientError) as err:
        _client(local_cloud.url, "iam").simulate_principal_policy(
            PolicySourceArn=f"{ACCOUNT}:user/nobody", ActionNames=["ec2:DescribeVpcs"])
    assert err.value.response["Error"]["Code"] == "NoSuchEntity"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    unchecked = boto3.client("iam", endpoint_url=local_cloud.url, region_name=server.DEFAULT_REGION,
                             aws_access_key_id="testing", aws_secret_access_key="testing",
                             config=Config(parameter_validation=False, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as err:
        unchecked.simulate_principal_policy(PolicySourceArn=f"{ACCOUNT}:user/nobody")
    assert err.value.response["Error"]["Code"] == "InvalidInput"


def test_plain_moto_lacks_simulate_principal_policy(plain_moto: str) -> None:
    iam, user = _simulated_user(plain_moto, "plain-sim")
    with pytest.raises((ClientError, ResponseParserError)) as err:
        iam.simulate_principal_policy(PolicySourceArn=user, ActionNames=["ec2:DescribeVpcs"])
    assert "500" in str(err.value)



@pytest.fixture
def enforced(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process, its request authorisation as it was before the test."""
    monkeypatch.setattr(IAMRequestBase, "__init__", IAMRequestBase.__init__)
    monkeypatch.setattr(IAMRequestBase, "_create_aws_request", IAMRequestBase._create_aws_request)
    monkeypatch.setattr(IAMRequestBase, "check_action_permitted", IAMRequestBase.check_action_permitted)
    had_resource_hook = "_determine_resource" in vars(SimpleSystemManagerResponse)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    yield
    if not had_resource_hook and "_determine_resource" in vars(SimpleSystemManagerResponse):
        delattr(SimpleSystemManagerResponse, "_determine_resource")


def _as_user_allowed(action: str, service: str, call: Callable[[Any], Any], resource: str = "*") -> str:
    """Make call with a client of a user whose one policy allows action on resource, IAM enforced."""
    @set_initial_no_auth_action_count(3)  # the user, its policy and its key are made unauthorised
    def run() -> str:
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="caller")
        iam.put_user_policy(UserName="caller", PolicyName="one", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]}))
        key = iam.create_access_key(UserName="caller")["AccessKey"]
        caller = boto3.client(service, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                              aws_secret_access_key=key["SecretAccessKey"])
        try:
            call(caller)
        except ClientError as exc:  # botocore parses some of moto's denials without a code
            return f"denied {exc.response['ResponseMetadata']['HTTPStatusCode']}"
        return "allowed"

    with mock_aws():
        return run()


@pytest.mark.usefixtures("enforced")
def test_cloudwatch_calls_are_authorised_as_cloudwatch_actions() -> None:
    def describe(watcher: Any) -> None:
        watcher.describe_alarms()

    assert _as_user_allowed("cloudwatch:DescribeAlarms", "cloudwatch", describe) == "denied 403"
    fix_iam_enforcement.apply_action_prefix()
    assert _as_user_allowed("cloudwatch:DescribeAlarms", "cloudwatch", describe) == "allowed"


@pytest.mark.usefixtures("enforced")
def test_tagging_api_calls_are_authorised_as_tag_actions() -> None:
    def alarms(tagging: Any) -> None:
        tagging.get_resources(ResourceTypeFilters=["cloudwatch:alarm"])

    assert _as_user_allowed("tag:GetResources", "resourcegroupstaggingapi", alarms) == "denied 403"
    fix_iam_enforcement.apply_action_prefix()
    assert _as_user_allowed("tag:GetResources", "resourcegroupstaggingapi", alarms) == "allowed"
    assert _as_user_allowed("tagging:GetResources", "resourcegroupstaggingapi", alarms) == "denied 403"


@pytest.mark.usefixtures("enforced")
def test_a_get_with_a_query_string_passes_the_signature_check() -> None:
    def by_name(route53: Any) -> None:
        route53.list_hosted_zones_by_name(DNSName="example.test.")

    assert _as_user_allowed("route53:ListHostedZonesByName", "route53", by_name) == "denied 403"
    fix_iam_enforcement.apply_query_signature()
    assert _as_user_allowed("route53:ListHostedZonesByName", "route53", by_name) == "allowed"


@pytest.mark.usefixtures("enforced")
def test_ssm_parameter_calls_are_authorised_against_the_parameters_arn() -> None:
    def by_path(path: str) -> Callable[[Any], Any]:
        return lambda ssm: ssm.get_parameters_by_path(Path=path)

    own = "arn:aws:ssm:us-east-1:123456789012:parameter/app/dev/config/*"
    assert _as_user_allowed("ssm:GetParametersByPath", "ssm", by_path("/app/dev/config/"), own) == "denied 403"
    fix_iam_enforcement.apply_ssm_parameter_resource()
    assert _as_user_allowed("ssm:GetParametersByPath", "ssm", by_path("/app/dev/config/"), own) == "allowed"
    assert _as_user_allowed("ssm:GetParametersByPath", "ssm", by_path("/other/dev/config/"), own) == "denied 403"
    assert _as_user_allowed("ssm:GetParametersByPath", "ssm", by_path("/other/"), "*") == "allowed"


def _ec2_as_scoped_user(calls: list[tuple[str, Callable[[Any, dict[str, str]], Any]]],
                        tag_on_create: bool = True) -> list[tuple[str, str]]:
    """Run calls as a user whose EC2 permissions are scoped by tags, IAM enforced: VPCs and
    subnets of the app nodeapp only; each call gets the ids of a VPC of nodeapp, of another app
    and of nobody, made beforehand. Returns (call, allowed or the error code)."""
    app = {"StringEquals": {"aws:RequestTag/App": "nodeapp"}}
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": "ec2:CreateVpc", "Resource": "arn:aws:ec2:us-east-1:123456789012:vpc/*",
         "Condition": app},
        {"Effect": "Allow", "Action": "ec2:CreateSubnet", "Resource": "arn:aws:ec2:us-east-1:123456789012:subnet/*",
         "Condition": app},
        {"Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": "*",
         "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateVpc", "CreateSubnet"]}}},
        {"Effect": "Allow", "Action": ["ec2:CreateTags", "ec2:DeleteTags"], "Resource": "*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/App": "nodeapp"},
                       "ForAllValues:StringNotEquals": {"aws:TagKeys": ["App"]}, "Null": {"aws:TagKeys": "false"}}},
        {"Effect": "Allow", "Action": ["ec2:DeleteVpc", "ec2:CreateSubnet"],
         "Resource": "arn:aws:ec2:us-east-1:123456789012:vpc/*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/App": "nodeapp"}}},
        {"Effect": "Allow", "Action": "ec2:DescribeVpcs", "Resource": "*"},
    ]

    if not tag_on_create:
        statements = [s for s in statements if "ec2:CreateAction" not in str(s.get("Condition"))]

    def tagged(app: str | None) -> list[dict[str, Any]]:
        return [] if app is None else [{"ResourceType": "vpc", "Tags": [{"Key": "App", "Value": app}]}]

    @set_initial_no_auth_action_count(6)  # the user, its policy, its key and three VPCs
    def run() -> list[tuple[str, str]]:
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="caller")
        iam.put_user_policy(UserName="caller", PolicyName="scoped", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
        key = iam.create_access_key(UserName="caller")["AccessKey"]
        setup = boto3.client("ec2", region_name="us-east-1")
        vpcs = {who: setup.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=tagged(app))["Vpc"]["VpcId"]
                for who, app in (("own", "nodeapp"), ("other", "shop"), ("nobody", None))}
        caller = boto3.client("ec2", region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                              aws_secret_access_key=key["SecretAccessKey"])
        outcomes = []
        for name, call in calls:
            try:
                call(caller, vpcs)
                outcomes.append((name, "allowed"))
            except ClientError as exc:
                outcomes.append((name, exc.response["Error"]["Code"]))
        return outcomes

    with mock_aws():
        return run()


@pytest.mark.usefixtures("enforced")
def test_ec2_calls_are_authorised_per_resource_with_tag_conditions() -> None:
    def subnet(app: str) -> list[dict[str, Any]]:
        return [{"ResourceType": "subnet", "Tags": [{"Key": "App", "Value": app}]}]

    calls: list[tuple[str, Callable[[Any, dict[str, str]], Any]]] = [
        ("create tagged", lambda ec2, _: ec2.create_vpc(CidrBlock="10.1.0.0/16", TagSpecifications=[
            {"ResourceType": "vpc", "Tags": [{"Key": "App", "Value": "nodeapp"}]}])),
        ("create untagged", lambda ec2, _: ec2.create_vpc(CidrBlock="10.2.0.0/16")),
        ("create as another app", lambda ec2, _: ec2.create_vpc(CidrBlock="10.3.0.0/16", TagSpecifications=[
            {"ResourceType": "vpc", "Tags": [{"Key": "App", "Value": "shop"}]}])),
        ("subnet in own vpc", lambda ec2, v: ec2.create_subnet(VpcId=v["own"], CidrBlock="10.0.1.0/24",
                                                               TagSpecifications=subnet("nodeapp"))),
        ("subnet in another's vpc", lambda ec2, v: ec2.create_subnet(VpcId=v["other"], CidrBlock="10.0.1.0/24",
                                                                     TagSpecifications=subnet("nodeapp"))),
        ("delete another's vpc", lambda ec2, v: ec2.delete_vpc(VpcId=v["other"])),
        ("delete an untagged vpc", lambda ec2, v: ec2.delete_vpc(VpcId=v["nobody"])),
        ("describe", lambda ec2, _: ec2.describe_vpcs()),
        ("retag own vpc", lambda ec2, v: ec2.create_tags(Resources=[v["own"]], Tags=[{"Key": "Tier", "Value": "a"}])),
        ("untag own vpc's App", lambda ec2, v: ec2.delete_tags(Resources=[v["own"]], Tags=[{"Key": "App"}])),
        ("untag all of own vpc", lambda ec2, v: ec2.delete_tags(Resources=[v["own"]])),
        ("retag another's vpc", lambda ec2, v: ec2.create_tags(Resources=[v["other"]],
                                                               Tags=[{"Key": "Tier", "Value": "a"}])),
    ]
    denied = "UnauthorizedOperation"
    want = [("create tagged", "allowed"), ("create untagged", denied), ("create as another app", denied),
            ("subnet in own vpc", "allowed"), ("subnet in another's vpc", denied),
            ("delete another's vpc", denied), ("delete an untagged vpc", denied), ("describe", "allowed"),
            ("retag own vpc", "allowed"), ("untag own vpc's App", denied), ("untag all of own vpc", denied),
            ("retag another's vpc", denied)]
    plain = _ec2_as_scoped_user(calls)
    assert dict(plain)["create tagged"] != "allowed"  # moto: no resource or condition matches "*" without context
    fix_ec2_authorization.apply()
    assert _ec2_as_scoped_user(calls) == want
    # tags given at creation are authorised as ec2:CreateTags too
    assert dict(_ec2_as_scoped_user(calls[:1], tag_on_create=False)) == {"create tagged": denied}


def _launch_template(ec2: Any, name: str, app: str | None, sg: str, profile: str, instance_app: str) -> None:
    """A template as roles/stack_compute makes it: the app's security group and instance profile,
    its instances and volumes tagged App=instance_app at launch; the template itself tagged
    App=app (untagged for None)."""
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": "ami-785db401", "InstanceType": "t3.micro", "SecurityGroupIds": [sg],
        "IamInstanceProfile": {"Name": profile},
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        "TagSpecifications": [{"ResourceType": kind, "Tags": [{"Key": "App", "Value": instance_app}]}
                              for kind in ("instance", "volume")]},
        TagSpecifications=[] if app is None else [
            {"ResourceType": "launch-template", "Tags": [{"Key": "App", "Value": app}]}])


def _groups_as_deployer(without: str | None = None) -> dict[str, str]:
    """As a user holding the stack deployer's policies as the local cloud enforces them (less the
    statement `without`), IAM enforced: create or update a group with launch templates of the
    app, of another app, untagged, and one whose instances would carry another app's tag. The
    network and templates are an administrator's. Returns case -> allowed or 'code: message'."""
    scope = identities.local_scope("us-east-1")
    app = [{"Key": "App", "Value": "nodeapp"}]

    @set_initial_no_auth_action_count(3)  # the administrator, its policy and its key
    def run() -> dict[str, str]:
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=_policy(
            {"Effect": "Allow", "Action": "*", "Resource": "*"}))

        def as_user(key: dict[str, str], service: str) -> Any:
            return boto3.client(service, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                                aws_secret_access_key=key["SecretAccessKey"])

        admin_key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin_iam, ec2 = as_user(admin_key, "iam"), as_user(admin_key, "ec2")
        admin_iam.create_user(UserName="deployer")
        for kind in ("stack-network", "stack", "verify"):
            document = permissions.for_emulator(permissions.render(kind, scope))
            document["Statement"] = [s for s in document["Statement"] if s.get("Sid") != without]
            arn = admin_iam.create_policy(PolicyName=kind, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
            admin_iam.attach_user_policy(UserName="deployer", PolicyArn=arn)
        trust = _policy({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})
        role = admin_iam.create_role(Path=names.iam_path(), RoleName="nodeapp-dev-app", AssumeRolePolicyDocument=trust)
        admin_iam.create_instance_profile(Path=names.iam_path(), InstanceProfileName="nodeapp-dev-app")
        admin_iam.add_role_to_instance_profile(InstanceProfileName="nodeapp-dev-app",
                                               RoleName=role["Role"]["RoleName"])
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = {who: ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, TagSpecifications=[
            {"ResourceType": "subnet", "Tags": [{"Key": "App", "Value": who}]}])["Subnet"]["SubnetId"]
            for who, cidr in (("nodeapp", "10.0.1.0/24"), ("shop", "10.0.2.0/24"))}
        sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc, TagSpecifications=[
            {"ResourceType": "security-group", "Tags": app}])["GroupId"]
        for name, owner, instance_app in (("nodeapp-dev", "nodeapp", "nodeapp"), ("shop-dev", "shop", "nodeapp"),
                                          ("nobodys", None, "nodeapp"), ("nodeapp-as-shop", "nodeapp", "shop")):
            _launch_template(ec2, name, owner, sg, "nodeapp-dev-app", instance_app)
        asg = as_user(admin_iam.create_access_key(UserName="deployer")["AccessKey"], "autoscaling")

        def group(name: str, template: dict[str, Any], subnet: str = subnets["nodeapp"]) -> None:
            asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=0, VPCZoneIdentifier=subnet,
                                          **template)

        def named(template: str, version: str = "$Default") -> dict[str, Any]:
            return {"LaunchTemplate": {"LaunchTemplateName": template, "Version": version}}

        cases: dict[str, Callable[[], Any]] = {
            "app's": lambda: group("nodeapp-dev-a", named("nodeapp-dev")),
            "another app's": lambda: group("nodeapp-dev-b", named("shop-dev")),
            "untagged": lambda: group("nodeapp-dev-c", named("nobodys", "1")),
            "instances of another app": lambda: group("nodeapp-dev-d", named("nodeapp-as-shop")),
            "into another app's subnet": lambda: group("nodeapp-dev-e", named("nodeapp-dev"), subnets["shop"]),
            "mixed, an override another app's": lambda: group("nodeapp-dev-f", {"MixedInstancesPolicy": {
                "LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateName": "nodeapp-dev"},
                                   "Overrides": [{"InstanceType": "t3.small", "LaunchTemplateSpecification": {
                                       "LaunchTemplateName": "shop-dev"}}]}}}),
            "update to another app's": lambda: asg.update_auto_scaling_group(
                AutoScalingGroupName="nodeapp-dev-a", **named("shop-dev", "$Latest")),
            "update of sizes only": lambda: asg.update_auto_scaling_group(AutoScalingGroupName="nodeapp-dev-a",
                                                                           MaxSize=1),
        }
        outcomes = {}
        for case, call in cases.items():
            try:
                call()
                outcomes[case] = "allowed"
            except ClientError as exc:
                error = exc.response["Error"]
                outcomes[case] = f"{exc.response['ResponseMetadata']['HTTPStatusCode']} {error['Code']}: " \
                                 f"{error['Message']}"
        return outcomes

    with mock_aws():
        return run()


@pytest.mark.usefixtures("enforced")
def test_a_group_may_use_only_launch_templates_its_caller_may_launch_from() -> None:
    def refused(template: str) -> str:
        return f"403 AccessDenied: You are not authorized to use launch template: {template}"

    assert set(_groups_as_deployer().values()) == {"allowed"}  # moto: the group's own action only
    fix_asg_launch_authorization.apply()
    assert _groups_as_deployer() == {
        "app's": "allowed", "another app's": refused("shop-dev"), "untagged": refused("nobodys"),
        "instances of another app": refused("nodeapp-as-shop"), "into another app's subnet": refused("nodeapp-dev"),
        "mixed, an override another app's": refused("shop-dev"), "update to another app's": refused("shop-dev"),
        "update of sizes only": "allowed"}
    # tags at launch are authorised as ec2:CreateTags, the instance profile's role as iam:PassRole
    for statement in ("TagAtLaunch", "PassInstanceRoleToEc2", "LaunchFromTemplates"):
        assert _groups_as_deployer(without=statement)["app's"] == refused("nodeapp-dev"), statement
