"""Narrow fixes for gaps of moto 5.2 that the project hits.

Each fix implements the behaviour the AWS API reference documents, nothing
more, and is covered by a test in tests/integration/test_emulator_fixes.py
that fails without it. None reports success for work it did not do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import AutoScalingBackend
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE
from moto.elb.exceptions import LoadBalancerNotFoundError
from moto.elb.responses import ELBResponse
from moto.sns.models import Topic

from nodestack.local_cloud import (
    fix_alb_default_attributes,
    fix_asg_launch_authorization,
    fix_asg_placement,
    fix_ec2_authorization,
    fix_iam_enforcement,
    fix_image_imds_support,
    fix_instance_refresh,
    fix_launch_instance_settings,
    fix_launch_template_versions,
    fix_shared_images,
    fix_simulate_principal_policy,
    fix_target_health,
)


@dataclass(frozen=True)
class Fix:
    name: str
    summary: str
    apply: Callable[[], None]


def _disable_metrics_collection() -> None:
    """autoscaling DisableMetricsCollection: not implemented in moto (HTTP 500).

    AWS: removes the named metrics from the group's enabled metrics; with no
    Metrics given, disables all of them. An unknown group is a ValidationError.
    """

    def backend_disable(self: AutoScalingBackend, group_name: str, metrics: list[str] | None) -> None:
        group = self.autoscaling_groups.get(group_name)
        if group is None:
            raise ValidationError(f"Group {group_name} not found")
        group.metrics = [m for m in group.metrics if metrics and m not in metrics]

    def response_disable(self: AutoScalingResponse) -> ActionResult:
        self.autoscaling_backend.disable_metrics_collection(  # type: ignore[attr-defined]
            self._get_param("AutoScalingGroupName"), self._get_param("Metrics")
        )
        return EmptyResult()

    AutoScalingBackend.disable_metrics_collection = backend_disable  # type: ignore[attr-defined]
    AutoScalingResponse.disable_metrics_collection = response_disable  # type: ignore[attr-defined]


def _image_description() -> None:
    """ec2 ModifyImageAttribute with Description: moto 5.2 answers success and keeps the old one.

    AWS: Description.Value replaces the image's description (one attribute per call), which
    DescribeImages then returns.
    """
    original = AmisResponse.modify_image_attribute

    def modify(self: AmisResponse) -> Any:
        value = self._get_param("Description.Value")
        if value is None:
            return original(self)
        self.error_on_dryrun()
        ami_id = self._get_param("ImageId")
        image = self.ec2_backend.amis.get(ami_id)  # the caller's own images only, as AWS
        if image is None:
            raise InvalidAMIIdError(ami_id)
        image.description = value
        return EmptyResult()

    AmisResponse.modify_image_attribute = modify  # type: ignore[method-assign]


def _elb_attributes_of_missing_lb() -> None:
    """elb DescribeLoadBalancerAttributes on a missing load balancer: moto answers HTTP 500.

    AWS: answers 400 LoadBalancerNotFound ("The specified load balancer does
    not exist"), which amazon.aws.elb_classic_lb relies on when it creates one.
    """
    original = ELBResponse.describe_load_balancer_attributes

    def describe(self: ELBResponse) -> ActionResult:
        name = self._get_param("LoadBalancerName")
        if self.elb_backend.get_load_balancer(name) is None:
            raise LoadBalancerNotFoundError(name)
        return original(self)

    ELBResponse.describe_load_balancer_attributes = describe  # type: ignore[method-assign]


# DescribeTags' resource-type for each id prefix, as the EC2 API reference names it where
# moto's own name differs (moto: "nat-gateway", "vpc-elastic-ip").
DESCRIBE_TAGS_RESOURCE_TYPES = {"nat": "natgateway", "eipalloc": "elastic-ip"}


def _describe_tags_resource_types() -> None:
    """ec2 DescribeTags: NAT gateways and Elastic IPs under moto's own resource-type names.

    AWS: the resource-type filter and each tag's ResourceType say `natgateway` and
    `elastic-ip`. amazon.aws's tag helpers filter by `natgateway`, found nothing, and so
    `ec2_vpc_nat_gateway` re-tagged an existing gateway (changed) on every run.
    """
    EC2_PREFIX_TO_RESOURCE.update(DESCRIBE_TAGS_RESOURCE_TYPES)


def _topic_subscription_counts() -> None:
    """sns GetTopicAttributes: SubscriptionsConfirmed and SubscriptionsPending are always 0.

    AWS: the number of the topic's confirmed subscriptions and of those awaiting confirmation.
    moto keeps both counters at 0 whatever is subscribed; preflight reports a topic without a
    confirmed subscription (alarms that notify nobody). Counted from the topic's subscriptions.
    """
    def counter(pending: bool) -> property:
        def count(self: Topic) -> int:
            wanted = str(pending).lower()
            return sum(1 for subscription in self.sns_backend.subscriptions.values()
                       if subscription.topic_arn == self.arn
                       and str(subscription.attributes.get("PendingConfirmation", False)).lower() == wanted)

        def ignore(self: Topic, value: int) -> None:
            """Topic() sets the counters to 0: they are derived."""
        return property(count, ignore)

    Topic.subscriptions_confimed = counter(False)  # type: ignore[assignment]  # moto's spelling
    Topic.subscriptions_pending = counter(True)  # type: ignore[assignment]


FIXES: tuple[Fix, ...] = (
    Fix("autoscaling-disable-metrics-collection", "DisableMetricsCollection implemented", _disable_metrics_collection),
    Fix("elb-attributes-missing-lb", "DescribeLoadBalancerAttributes of a missing LB is LoadBalancerNotFound",
        _elb_attributes_of_missing_lb),
    Fix("ec2-delete-launch-template-versions",
        "DeleteLaunchTemplateVersions; numbers never reused; user data and tags of versions as AWS keeps them",
        fix_launch_template_versions.apply),
    Fix("autoscaling-instance-refresh", "Start/Describe/CancelInstanceRefresh: rolling batches by MinHealthyPercentage",
        fix_instance_refresh.apply),
    Fix("autoscaling-placement", "instances balanced over the group's zones; scale-in by termination policies",
        fix_asg_placement.apply),
    Fix("ec2-launch-instance-settings", "instances from a launch template or configuration get its instance profile "
        "and metadata options", fix_launch_instance_settings.apply),
    Fix("ec2-image-description", "ModifyImageAttribute sets the image's Description", _image_description),
    Fix("ec2-image-imds-support", "RegisterImage/ModifyImageAttribute keep ImdsSupport; DescribeImages returns it",
        fix_image_imds_support.apply),
    Fix("ec2-shared-images", "an image another account shared (launch permission) is seen and launched by that "
        "account (RunInstances), without its owner's tags, and tagged by it with tags of its own; an unshared one is "
        "InvalidAMIID.NotFound", fix_shared_images.apply),
    Fix("elbv2-alb-default-attributes", "a new ALB has every attribute AWS documents, with its defaults",
        fix_alb_default_attributes.apply),
    Fix("ec2-describe-tags-resource-types", "DescribeTags names NAT gateways natgateway and Elastic IPs elastic-ip",
        _describe_tags_resource_types),
    Fix("elb-target-health", "DescribeTargetHealth / DescribeInstanceHealth report the data plane's health checks",
        fix_target_health.apply),
    Fix("iam-simulate-principal-policy", "SimulatePrincipalPolicy evaluates the entity's identity policies as AWS does",
        fix_simulate_principal_policy.apply),
    Fix("iam-action-prefix", "with IAM enforced, CloudWatch and tagging API calls are authorised as "
        "cloudwatch:<Action> and tag:<Action>",
        fix_iam_enforcement.apply_action_prefix),
    Fix("iam-query-signature", "with IAM enforced, a GET with a query string is signed as SigV4 signs it",
        fix_iam_enforcement.apply_query_signature),
    Fix("iam-ec2-resources", "with IAM enforced, an EC2 call is authorised per resource with its tags and the "
        "request's tags as condition keys", fix_ec2_authorization.apply),
    Fix("iam-autoscaling-launch-template", "with IAM enforced, a group created or updated with a launch template "
        "needs its caller's permission to launch from it (ec2:RunInstances, ec2:CreateTags, iam:PassRole)",
        fix_asg_launch_authorization.apply),
    Fix("iam-ssm-parameter-resource", "with IAM enforced, SSM parameter calls are authorised against the "
        "parameter's ARN", fix_iam_enforcement.apply_ssm_parameter_resource),
    Fix("sns-subscription-counts", "GetTopicAttributes counts the topic's confirmed and pending subscriptions",
        _topic_subscription_counts),
)


def apply_all() -> list[str]:
    """Apply every fix once; returns their names."""
    for fix in FIXES:
        fix.apply()
    return [fix.name for fix in FIXES]
