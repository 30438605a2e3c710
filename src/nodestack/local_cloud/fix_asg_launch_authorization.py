"""autoscaling with IAM enforced: moto authorises CreateAutoScalingGroup and UpdateAutoScalingGroup
by their own action only, so a caller may give a group any launch template and the group then
launches instances (moto's own path, never authorised) that the caller could not launch itself.

AWS (EC2 Auto Scaling User Guide, "Launch template support", "Amazon EC2 Auto Scaling API
permissions", "Troubleshoot: launch templates"): a caller that creates or updates a group with a
launch template (LaunchTemplate, or MixedInstancesPolicy's template and its overrides' templates)
must have permission to use it: ec2:RunInstances on the template and on the resources a launch
from it uses and creates, ec2:CreateTags with ec2:CreateAction RunInstances when the template has
tag specifications, and iam:PassRole for the role of the template's instance profile. Otherwise
the call fails with AccessDenied, "You are not authorized to use launch template: <template as
the request names it>" (the status is not documented: 403, as Auto Scaling's other
AccessDenied). The check is made at that call only: a group on $Latest or $Default is not checked
again when a new version is created.

Each launch the group may make is authorised as the RunInstances EC2 authorises
(fix_ec2_authorization.authorisations, with the caller's policies read as the simulator reads
them): the template's version as the request names it ($Default when it names none), its image,
key pair, security groups and network interfaces, its tag specifications as the request's tags,
and a subnet of the group (the request's VPCZoneIdentifier, else the group's), which Auto Scaling
gives the primary network interface. iam:PassRole is authorised against each role of the
template's instance profile with iam:PassedToService ec2.amazonaws.com. Not checked: security
groups named by name, a template's image given as an SSM parameter (ssm:GetParameters), a
request that names no template (an update of sizes only), StartInstanceRefresh's desired
configuration. Applied with IAM enforced only (moto authorises nothing otherwise).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.core.exceptions import _RESTError
from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound
from moto.ec2.models import ec2_backends
from moto.iam.access_control import IAMRequestBase
from moto.iam.models import iam_backends
from moto.utilities.utils import get_partition
from xmltodict import unparse

from nodestack.local_cloud.fix_ec2_authorization import Authorisation, authorisations, caller_policies, first_refused

LOG = logging.getLogger(__name__)
GROUP_ACTIONS = ("autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup")
# What a launch from a template tags; moto keeps the template's own tags (launch-template) in
# its version data too, which a launch never gives.
LAUNCH_TAGGED = ("instance", "volume", "network-interface", "spot-instances-request")
# the request's launch template specifications: LaunchTemplate.*, MixedInstancesPolicy's and its overrides'
_SPECIFICATION = re.compile(r"^(LaunchTemplate|MixedInstancesPolicy\.LaunchTemplate\.(?:Overrides\.member\.\d+\.)?"
                            r"LaunchTemplateSpecification)\.(LaunchTemplateId|LaunchTemplateName)$")


class LaunchTemplateNotAuthorized(_RESTError):
    """Auto Scaling's refusal, in its query error document, raised where moto raises its AccessDenied."""

    code = 403

    def __init__(self, template: str) -> None:
        message = f"You are not authorized to use launch template: {template}"
        super().__init__("AccessDenied", message)
        self.description = unparse({"ErrorResponse": {
            "@xmlns": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
            "Error": {"Type": "Sender", "Code": "AccessDenied", "Message": message},
            "RequestId": str(uuid.uuid4())}}, full_document=True)


def _value(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return str(value[0] if isinstance(value, list) else value) if value else None


def _specifications(data: dict[str, Any]) -> Iterator[tuple[str, bool, str]]:
    """(template id or name as the request names it, whether it is an id, version) of each
    template the request names."""
    for key in data:
        match = _SPECIFICATION.match(key)
        if match:
            version = _value(data, f"{match.group(1)}.Version") or "$Default"
            yield _value(data, key) or "", match.group(2) == "LaunchTemplateId", version


def _version_data(backend: Any, named: str, by_id: bool, version: str) -> tuple[str, dict[str, Any]] | None:
    """(template id, the version's LaunchTemplateData); None when either is missing (the call then
    fails as moto fails it: nothing to authorise)."""
    template = backend.launch_templates.get(named if by_id else backend.launch_template_name_to_ids.get(named))
    if template is None:
        return None
    try:
        return template.id, template.get_version(version).data
    except (InvalidLaunchTemplateVersionNotFound, ValueError):  # no such version: the call reports it
        return None


def _subnets(data: dict[str, Any], account: str, region: str) -> list[str | None]:
    """The subnets the group launches into: the request's, else the group's; [None] for none named."""
    zones = _value(data, "VPCZoneIdentifier")
    if zones is None:
        group = autoscaling_backends[account][region].autoscaling_groups.get(_value(data, "AutoScalingGroupName") or "")
        zones = group.vpc_zone_identifier if group is not None else None
    return [s.strip() for s in zones.split(",") if s.strip()] if zones else [None]


def _tag_parameters(specifications: list[dict[str, Any]]) -> dict[str, list[str]]:
    """A template's TagSpecifications as RunInstances' TagSpecification.N parameters."""
    found: dict[str, list[str]] = {}
    for n, spec in enumerate(specifications, 1):
        found[f"TagSpecification.{n}.ResourceType"] = [str(spec.get("ResourceType", ""))]
        for m, tag in enumerate(spec.get("Tags", []), 1):
            found[f"TagSpecification.{n}.Tag.{m}.Key"] = [str(tag["Key"])]
            found[f"TagSpecification.{n}.Tag.{m}.Value"] = [str(tag.get("Value", ""))]
    return found


def _interface_parameters(interfaces: list[dict[str, Any]], subnet: str | None) -> dict[str, list[str]]:
    """A template's NetworkInterfaces as RunInstances' NetworkInterface.N parameters, the primary
    one (device index 0) in the group's subnet."""
    found: dict[str, list[str]] = {}
    for n, interface in enumerate(interfaces, 1):
        primary = str(interface.get("DeviceIndex", "0")) == "0"
        chosen = subnet if primary and subnet else interface.get("SubnetId")
        if chosen:
            found[f"NetworkInterface.{n}.SubnetId"] = [str(chosen)]
        for m, group in enumerate(interface.get("Groups", []), 1):
            found[f"NetworkInterface.{n}.SecurityGroupId.{m}"] = [str(group)]
    return found


def launch_request(template_id: str, data: dict[str, Any], subnet: str | None) -> dict[str, list[str]]:
    """The RunInstances parameters of a launch from the template's version data into subnet."""
    request: dict[str, list[str]] = {"LaunchTemplate.LaunchTemplateId": [template_id]}
    for key in ("ImageId", "KeyName"):
        if data.get(key):
            request[key] = [str(data[key])]
    for n, group in enumerate(data.get("SecurityGroupIds", []), 1):
        request[f"SecurityGroupId.{n}"] = [str(group)]
    interfaces = data.get("NetworkInterfaces", [])
    at_launch = [t for t in data.get("TagSpecifications", []) if t.get("ResourceType") in LAUNCH_TAGGED]
    request |= _interface_parameters(interfaces, subnet) | _tag_parameters(at_launch)
    if subnet and not any(str(i.get("DeviceIndex", "0")) == "0" for i in interfaces):
        request["SubnetId"] = [subnet]
    return request


def _pass_role(account: str, region: str, profile: dict[str, Any] | None) -> list[Authorisation]:
    """iam:PassRole of each role of the template's instance profile (none found: nothing to pass)."""
    if not profile:
        return []
    backend = iam_backends[account][get_partition(region)]
    found = next((p for p in backend.get_instance_profiles()
                  if p.name == profile.get("Name") or p.arn == profile.get("Arn")), None)
    roles = found.roles if found is not None else []
    return [("iam:PassRole", role.arn, {"iam:passedtoservice": ["ec2.amazonaws.com"]}) for role in roles]


def _unique(checks: list[Authorisation]) -> list[Authorisation]:
    """checks without repeats (one per subnet of the group)."""
    seen: list[Authorisation] = []
    for check in checks:
        if check not in seen:
            seen.append(check)
    return seen


def group_authorisations(data: dict[str, Any], account: str, region: str) -> list[tuple[str, list[Authorisation]]]:
    """(template as the request names it, the authorisations of using it) for each template of
    a CreateAutoScalingGroup or UpdateAutoScalingGroup request."""
    backend = ec2_backends[account][region]
    found = []
    for named, by_id, version in _specifications(data):
        resolved = _version_data(backend, named, by_id, version)
        if resolved is None:
            continue
        template_id, version_data = resolved
        launches = [launch_request(template_id, version_data, subnet) for subnet in _subnets(data, account, region)]
        checks = [c for launch in launches for c in authorisations(backend, "RunInstances", launch, region, account)]
        found.append((named, _unique(checks) + _pass_role(account, region, version_data.get("IamInstanceProfile"))))
    return found


def apply() -> None:
    original = IAMRequestBase.check_action_permitted

    def check(self: IAMRequestBase, resource: str) -> None:
        original(self, resource)
        if self._action not in GROUP_ACTIONS:
            return
        policies = caller_policies(self)
        for named, checks in group_authorisations(self._data, self.account_id, self._region):
            refused = first_refused(policies, checks)
            if refused is not None:
                LOG.info("%s: %s may not use launch template %s: %s on %s refused", self._action,
                         self._access_key.arn, named, refused[0], refused[1])
                raise LaunchTemplateNotAuthorized(named)

    IAMRequestBase.check_action_permitted = check  # type: ignore[method-assign]
