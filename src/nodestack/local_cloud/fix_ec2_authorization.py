"""ec2 with IAM enforced: moto authorises an EC2 request by its action alone, against the resource
"*" and with no condition keys, so no policy scoped to EC2 resources or tags can be enforced.

AWS (Service Authorization Reference, Amazon EC2; EC2 User Guide, "Grant permission to tag
Amazon EC2 resources during creation" and "Control access using resource tags"): an EC2 action is
authorised once for each resource of the request that the action supports, against that
resource's ARN (a resource the call creates: its type's ARN, the id not known yet), with the
request's condition keys: aws:RequestedRegion; aws:RequestTag/<key> and aws:TagKeys from the tags
the request applies (TagSpecification of a create, Tag of CreateTags/DeleteTags); and for an
existing resource ec2:ResourceTag/<key> from its tags. Tags given at creation are also authorised
as ec2:CreateTags on each resource created, with ec2:CreateAction naming the create action.
Describe actions (no resource-level permissions) are authorised against "*". Each authorisation
needs an Allow of the caller's identity policies and no Deny; one refused resource refuses the
call with UnauthorizedOperation (403).

The resources of a request are those its id parameters name (RESOURCE_PARAMETERS: the top-level
ones, RunInstances' network interfaces, CreateTags' ResourceId) and the types it creates (CREATES).
A resource AWS also authorises that these tables lack is not checked: laxer than AWS for it,
never stricter. Applied with IAM enforced only (moto checks nothing otherwise).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

from moto.core.exceptions import _RESTError
from moto.ec2.models import ec2_backends
from moto.iam.access_control import IAMPolicy, IAMRequestBase
from xmltodict import unparse

from nodestack.local_cloud import fix_simulate_principal_policy as simulate

# query parameter (".N" lists and nested network interfaces included) -> resource type
RESOURCE_PARAMETERS = {
    "VpcId": "vpc", "SubnetId": "subnet", "GroupId": "security-group", "SecurityGroupId": "security-group",
    "RouteTableId": "route-table", "InternetGatewayId": "internet-gateway", "AllocationId": "elastic-ip",
    "NatGatewayId": "natgateway", "VpcEndpointId": "vpc-endpoint", "LaunchTemplateId": "launch-template",
    "LaunchTemplateName": "launch-template", "InstanceId": "instance", "ImageId": "image",
    "SourceImageId": "image", "SnapshotId": "snapshot", "VolumeId": "volume", "KeyName": "key-pair",
}
# an id's prefix -> its type, for CreateTags/DeleteTags' ResourceId.N
ID_PREFIXES = {"vpc-": "vpc", "subnet-": "subnet", "sg-": "security-group", "rtb-": "route-table",
               "igw-": "internet-gateway", "eipalloc-": "elastic-ip", "nat-": "natgateway",
               "vpce-": "vpc-endpoint", "lt-": "launch-template", "i-": "instance", "ami-": "image",
               "snap-": "snapshot", "vol-": "volume", "eni-": "network-interface", "key-": "key-pair"}
# create action -> the types it creates
CREATES = {
    "CreateVpc": ("vpc",), "CreateSubnet": ("subnet",), "CreateInternetGateway": ("internet-gateway",),
    "CreateRouteTable": ("route-table",), "AllocateAddress": ("elastic-ip",), "CreateNatGateway": ("natgateway",),
    "CreateVpcEndpoint": ("vpc-endpoint",), "CreateSecurityGroup": ("security-group",),
    "CreateLaunchTemplate": ("launch-template",), "RunInstances": ("instance", "volume", "network-interface"),
    "ImportKeyPair": ("key-pair",), "CreateKeyPair": ("key-pair",), "CreateImage": ("image", "snapshot"),
    "RegisterImage": ("image",), "CopyImage": ("image",), "CreateSnapshot": ("snapshot",),
    "CreateVolume": ("volume",),
}
_GLOBAL_TYPES = ("image", "snapshot")  # their ARNs name no account: arn:aws:ec2:<region>::image/ami-...
_PARAMETER = re.compile(r"^(?:NetworkInterface\.\d+\.|LaunchTemplate\.)?([A-Za-z]+?)(?:\.\d+)?$")
Authorisation = tuple[str, str, dict[str, list[str]]]  # (action, resource ARN, context)


class UnauthorizedOperation(_RESTError):
    """EC2's refusal (AWS: HTTP 403, code UnauthorizedOperation), raised where moto raises its
    AccessDenied, so moto's dispatch answers it."""

    code = 403

    def __init__(self, message: str) -> None:
        super().__init__("UnauthorizedOperation", message)
        # EC2's error document, not the other query APIs' <ErrorResponse> (Go's SDK parses only this)
        self.description = unparse({"Response": {
            "Errors": {"Error": {"Code": "UnauthorizedOperation", "Message": message}},
            "RequestID": str(uuid.uuid4())}}, full_document=True)


def _arn(region: str, account: str, kind: str, name: str) -> str:
    return f"arn:aws:ec2:{region}:{'' if kind in _GLOBAL_TYPES else account}:{kind}/{name}"


def _values(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _indexed(data: dict[str, Any], prefix: str) -> dict[int, dict[str, str]]:
    """{N: {field: value}} of the parameters prefix.N.field."""
    found: dict[int, dict[str, str]] = {}
    for key in data:
        match = re.fullmatch(re.escape(prefix) + r"\.(\d+)\.(.+)", key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = _values(data, key)[0]
    return found


def request_tags(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The tags a request applies: per created type (TagSpecification), and under "" those of
    CreateTags/DeleteTags (Tag.N)."""
    tags: dict[str, dict[str, str]] = {}
    for spec in _indexed(data, "TagSpecification").values():
        kind = spec.get("ResourceType", "")
        entries: dict[int, dict[str, str]] = {}
        for key, value in spec.items():
            match = re.fullmatch(r"Tag\.(\d+)\.(Key|Value)", key)
            if match:
                entries.setdefault(int(match.group(1)), {})[match.group(2)] = value
        tags.setdefault(kind, {}).update({e["Key"]: e.get("Value", "") for e in entries.values() if "Key" in e})
    plain = {e["Key"]: e.get("Value", "") for e in _indexed(data, "Tag").values() if "Key" in e}
    if plain or "Tag.1.Key" in data:
        tags[""] = plain
    return tags


def _route_table_of(backend: Any, association: str) -> str | None:
    return next((table.id for table in backend.route_tables.values() if association in table._associations), None)


def _existing(backend: Any, data: dict[str, Any], action: str) -> Iterator[tuple[str, str]]:
    """(type, id or name) of each existing resource the request names."""
    creates = CREATES.get(action, ())
    for key in data:
        match = _PARAMETER.match(key)
        kind = RESOURCE_PARAMETERS.get(match.group(1)) if match else None
        if kind is not None and kind in creates and key in ("KeyName", "LaunchTemplateName"):
            continue  # the name of the resource the call creates
        values = _values(data, key)
        if action in ("CreateTags", "DeleteTags") and re.fullmatch(r"ResourceId\.\d+", key):
            kind = next((t for p, t in ID_PREFIXES.items() if values[0].startswith(p)), None)
        if key == "AssociationId" and action in ("DisassociateRouteTable", "ReplaceRouteTableAssociation"):
            kind, values = "route-table", [t for t in (_route_table_of(backend, values[0]),) if t]
        if kind is None:
            continue
        for value in values:
            if kind == "launch-template" and not value.startswith("lt-"):
                template = next((t for t in backend.launch_templates.values() if t.name == value), None)
                value = template.id if template else value
            yield kind, value


def _resource_tags(backend: Any, kind: str, name: str) -> dict[str, str]:
    if kind == "key-pair":  # named by its name (KeyName) or its id (CreateTags' key-...)
        pair = backend.key_pairs.get(name) or next((p for p in backend.key_pairs.values() if p.id == name), None)
        return dict(backend.tags.get(pair.id, {})) if pair else {}
    return dict(backend.tags.get(name, {}))


def _tag_keys(tags: dict[str, str], prefix: str) -> dict[str, list[str]]:
    return {f"{prefix}/{k}".lower(): [v] for k, v in tags.items()}


def authorisations(backend: Any, action: str, data: dict[str, Any], region: str,
                   account: str) -> list[Authorisation]:
    """(action, resource ARN, context) of each authorisation AWS makes for the request. A created
    resource's request tags are those of its type's TagSpecification; an existing resource has
    request tags only in CreateTags and DeleteTags (the tags they apply to it)."""
    base: dict[str, list[str]] = {"aws:requestedregion": [region]}
    if action.startswith("Describe"):
        return [(f"ec2:{action}", "*", base)]
    template = next((v for k in ("LaunchTemplate.LaunchTemplateId", "LaunchTemplate.LaunchTemplateName")
                     for v in _values(data, k)), None)
    if template is not None and action == "RunInstances":
        found = dict(_existing(backend, {"LaunchTemplateId": [template]}, action)).get("launch-template", template)
        base["ec2:launchtemplate"] = [_arn(region, account, "launch-template", found)]

    def requested(tags: dict[str, str], given: bool) -> dict[str, list[str]]:
        return base | _tag_keys(tags, "aws:RequestTag") | ({"aws:tagkeys": list(tags)} if given else {})

    tags = request_tags(data)
    applied = tags.get("", {})
    checks: list[Authorisation] = []
    for kind, name in dict.fromkeys(_existing(backend, data, action)):
        own = _resource_tags(backend, kind, name)
        context = requested(applied, "" in tags) | _tag_keys(own, "ec2:ResourceTag") | _tag_keys(own, "aws:ResourceTag")
        checks.append((f"ec2:{action}", _arn(region, account, kind, name), context))
    for kind in CREATES.get(action, ()):
        arn = _arn(region, account, kind, "*")
        context = requested(tags.get(kind, {}), kind in tags)
        checks.append((f"ec2:{action}", arn, context))
        if tags.get(kind):
            checks.append(("ec2:CreateTags", arn, context | {"ec2:createaction": [action]}))
    return checks or [(f"ec2:{action}", "*", requested(applied, "" in tags))]


def caller_policies(request: IAMRequestBase) -> list[simulate.SourcePolicy]:
    """The identity policies of the request's caller, read as the simulator reads them."""
    found = []
    for number, policy in enumerate(request._access_key.collect_policies()):
        found.append(simulate._source_policy(f"policy{number}", None, json.dumps(IAMPolicy(policy)._policy_json)))
    return found


def first_refused(policies: list[simulate.SourcePolicy], checks: list[Authorisation]) -> Authorisation | None:
    """The first of checks that the policies do not allow, None when they allow every one."""
    return next((c for c in checks if simulate._decide(policies, *c).decision != "allowed"), None)


def apply() -> None:
    original = IAMRequestBase.check_action_permitted

    def check(self: IAMRequestBase, resource: str) -> None:
        if self._service != "ec2":
            original(self, resource)
            return
        action = self._action.split(":", 1)[1]
        backend = ec2_backends[self.account_id][self._region]
        refused = first_refused(caller_policies(self),
                                authorisations(backend, action, self._data, self._region, self.account_id))
        if refused is not None:
            name, arn, context = refused
            raise UnauthorizedOperation(
                f"You are not authorized to perform this operation. User: {self._access_key.arn} is not "
                f"authorized to perform: {name} on resource: {arn} with context "
                f"{json.dumps({k: v for k, v in context.items() if k != 'aws:requestedregion'})}")

    IAMRequestBase.check_action_permitted = check  # type: ignore[method-assign]
