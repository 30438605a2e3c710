"""One batched read of a deployed stack, layer by layer, and what it is for: deciding which layers
site.yml may skip (their resources are as the last converging run left them and the settings,
the code and the AMI are the same), and giving verify the responses it would read again.

A layer's fingerprint is a digest of what its describe calls return, without what changes on its
own (timestamps, alarm states, instances, free addresses). After a run that applied layers, the
record (an SSM parameter) keeps the inputs and the fingerprint of each layer that read the same
before and after the run: a layer its run changed is recorded only once a later run finds it
unchanged (what needs two passes gets them). A layer is skipped only when the record holds the
same inputs and its fingerprint, the last run that applied every layer is younger than the age
the settings allow, and every layer before it is skipped too. Anything else, an unreadable state
among it, applies the layer and every layer after it.

The one implementation, for the Ansible module roles/stack/library/stack_converged.py (packed as
`ansible.module_utils.stack_state` through roles/stack/module_utils/stack_state.py) and for
verify/ (as `nodestack.stack_state`). Hence the standard library only; `client(service)` gives a
boto3 client."""

from __future__ import annotations

import datetime
import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

# what the readers call
SERVICES = ("iam", "logs", "ec2", "elb", "elbv2", "autoscaling", "cloudwatch", "route53", "resourcegroupstaggingapi")
LAYERS = ("iam", "logs", "network", "security_groups", "load_balancer", "compute", "dns")
RECORD_VERSION = 2
CLOCK_SKEW = datetime.timedelta(minutes=5)  # a record from further ahead is no record
# Not the stack's configuration: what AWS changes by itself or by the app's traffic.
VOLATILE = frozenset({
    "ResponseMetadata", "NextToken", "nextToken", "Marker", "IsTruncated", "MaxItems",
    "CreateDate", "CreatedTime", "CreatedTimestamp", "CreateTime", "CreationTime", "creationTime",
    "LastModified", "LastModifiedDate", "RoleLastUsed", "storedBytes",
    "Instances", "DesiredCapacity", "AvailableIpAddressCount",
    "StateValue", "StateReason", "StateReasonData", "StateUpdatedTimestamp", "StateTransitionedTimestamp",
    "AlarmConfigurationUpdatedTimestamp", "EvaluationState", "LastLaunchedTime",
})
# Answers that mean "not there", which is a state too (the layer makes it).
ABSENT = frozenset({
    "NoSuchEntity", "ResourceNotFoundException", "LoadBalancerNotFound", "TargetGroupNotFound",
    "AccessPointNotFound", "ValidationError", "InvalidLaunchTemplateName.NotFoundException",
    "InvalidLaunchTemplateId.NotFound", "NoSuchHostedZone", "ParameterNotFound",
})

Client = Callable[[str], Any]


def call_key(service: str, operation: str, params: dict[str, Any]) -> str:
    """One call's identity: the same service, operation and parameters give the same key."""
    return json.dumps([service, operation, params], sort_keys=True, default=str)


@dataclass
class Reader:
    """Makes each describe call once (the layers read side by side) and keeps every response, by layer."""

    client: Client
    calls: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, list[str]] = field(default_factory=dict)
    # the part of a response a layer's fingerprint takes, when not all of it (by layer, then call)
    parts: dict[str, dict[str, Callable[[dict[str, Any]], Any]]] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    # what preflight needs of the read, noted by the readers as they read it (see found())
    noted: dict[str, Any] = field(default_factory=dict)
    _pending: dict[str, Future[dict[str, Any]]] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, layer: str) -> LayerRead:
        """The call function of one layer's reader."""
        self.layers.setdefault(layer, [])  # a layer that reads nothing has a fingerprint too
        self.parts.setdefault(layer, {})
        return LayerRead(self, layer)

    def call(self, layer: str, service: str, operation: str, part: Callable[[dict[str, Any]], Any] | None,
             params: dict[str, Any]) -> dict[str, Any]:
        key = call_key(service, operation, params)
        self.layers[layer].append(key)
        if part:
            self.parts[layer][key] = part
        with self._lock:
            made = key in self._pending
            if not made:
                self._pending[key] = Future()
        if not made:
            self._make(key, service, operation, params)
        response = self._pending[key].result()
        if key in self._failed:  # every layer reading it, not only the first
            with self._lock:
                self.unreadable.setdefault(layer, self._failed[key])
        return response

    def note(self, **values: Any) -> None:
        with self._lock:
            self.noted.update(values)

    def _make(self, key: str, service: str, operation: str, params: dict[str, Any]) -> None:
        try:
            response = getattr(self.client(service), operation)(**params)
        except Exception as err:  # noqa: BLE001 - boto3's errors: botocore is not imported here
            code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
            if code not in ABSENT:
                self._failed[key] = f"{service}:{operation}: {code or err}"
            response = {"Error": {"Code": code or type(err).__name__}}
        except BaseException as err:  # an interrupt: the layers waiting on this call end too
            self._pending[key].set_exception(err)
            raise
        response.pop("ResponseMetadata", None)
        self.calls[key] = response
        self._pending[key].set_result(response)


@dataclass
class LayerRead:
    """One layer's reads, called as read(service, operation, part=..., **params); note() keeps
    what preflight needs of them."""

    reader: Reader
    layer: str

    def __call__(self, service: str, operation: str, part: Callable[[dict[str, Any]], Any] | None = None,
                 **params: Any) -> dict[str, Any]:
        return self.reader.call(self.layer, service, operation, part, params)

    def note(self, **values: Any) -> None:
        self.reader.note(**values)


def _tag_filters(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in sorted(tags.items())]


def _iam(read: LayerRead, spec: dict[str, Any]) -> None:
    role = spec["names"]["instance_role"]
    read("iam", "get_role", RoleName=role)
    read("iam", "get_role_policy", RoleName=role, PolicyName=spec["names"]["instance_policy"])
    read("iam", "get_instance_profile", InstanceProfileName=role)


def _logs(read: LayerRead, spec: dict[str, Any]) -> None:
    name = spec["names"]["log_group"]
    read("logs", "describe_log_groups", logGroupNamePrefix=name,
         part=lambda found: [g for g in found.get("logGroups", []) if g["logGroupName"] == name])
    read("logs", "list_tags_log_group", logGroupName=name)


def _network(read: LayerRead, spec: dict[str, Any]) -> None:
    tags = _tag_filters(spec["tags"])
    vpcs = read("ec2", "describe_vpcs", Filters=tags).get("Vpcs", [])
    for vpc in sorted(v["VpcId"] for v in vpcs):
        for attribute in ("enableDnsHostnames", "enableDnsSupport"):
            read("ec2", "describe_vpc_attribute", VpcId=vpc, Attribute=attribute)
    read("ec2", "describe_subnets", Filters=tags)
    read("ec2", "describe_internet_gateways", Filters=tags)
    read("ec2", "describe_route_tables", Filters=tags)
    # an Elastic IP's association shows in its NAT gateway; a deleted gateway drops out of the list
    read("ec2", "describe_nat_gateways", Filters=[*tags, {"Name": "state", "Values": ["pending", "available"]}])
    read("ec2", "describe_vpc_endpoints",
         Filters=[*tags, {"Name": "vpc-endpoint-state", "Values": ["pending", "available"]}])
    endpoints = spec["names"]["endpoint_group"]  # the stack's groups are the next layer's, but this one
    read("ec2", "describe_security_groups", Filters=tags,
         part=lambda found: [g for g in found.get("SecurityGroups", []) if g["GroupName"] == endpoints])


def _security_groups(read: LayerRead, spec: dict[str, Any]) -> None:
    read("ec2", "describe_security_groups", Filters=_tag_filters(spec["tags"]))


def _load_balancer(read: LayerRead, spec: dict[str, Any]) -> None:
    release = spec["release"]
    if spec["lb_kind"] == "classic":
        found = read("elb", "describe_load_balancers", LoadBalancerNames=[release])
        read.note(lb_dns_name=next((lb["DNSName"] for lb in found.get("LoadBalancerDescriptions", [])), ""))
        if found.get("LoadBalancerDescriptions"):
            read("elb", "describe_load_balancer_attributes", LoadBalancerName=release)
            read("elb", "describe_tags", LoadBalancerNames=[release])
        return
    lbs = read("elbv2", "describe_load_balancers", Names=[release]).get("LoadBalancers", [])
    read.note(lb_dns_name=next((lb["DNSName"] for lb in lbs), ""))
    groups = read("elbv2", "describe_target_groups", Names=[spec["names"]["target_group"]]).get("TargetGroups", [])
    arns = [lb["LoadBalancerArn"] for lb in lbs] + [tg["TargetGroupArn"] for tg in groups]
    for lb in lbs:
        read("elbv2", "describe_load_balancer_attributes", LoadBalancerArn=lb["LoadBalancerArn"])
        listeners = read("elbv2", "describe_listeners", LoadBalancerArn=lb["LoadBalancerArn"]).get("Listeners", [])
        for listener in listeners:  # the layer's module removes rules it does not list
            read("elbv2", "describe_rules", ListenerArn=listener["ListenerArn"])
    if arns:
        read("elbv2", "describe_tags", ResourceArns=arns)


def _compute(read: LayerRead, spec: dict[str, Any]) -> None:
    release = spec["release"]
    groups = read("autoscaling", "describe_auto_scaling_groups",
                  AutoScalingGroupNames=[release]).get("AutoScalingGroups", [])
    if spec["launch_kind"] == "template":
        templates = read("ec2", "describe_launch_templates",
                         Filters=[{"Name": "launch-template-name", "Values": [release]}]).get("LaunchTemplates", [])
        for template in templates:
            read("ec2", "describe_launch_template_versions",
                 LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Default"])
    for group in groups:
        if group.get("LaunchConfigurationName"):
            read("autoscaling", "describe_launch_configurations",
                 LaunchConfigurationNames=[group["LaunchConfigurationName"]])
    read("autoscaling", "describe_policies", AutoScalingGroupName=release)
    alarms = tuple(f":alarm:{name}" for name in spec["names"]["alarms"])
    read("cloudwatch", "describe_alarms", AlarmNames=list(spec["names"]["alarms"]))
    read("resourcegroupstaggingapi", "get_resources", **alarm_tags_query(spec["tags"]),
         part=lambda found: [r for r in found.get("ResourceTagMappingList", []) if r["ResourceARN"].endswith(alarms)])


def alarm_tags_query(tags: dict[str, str]) -> dict[str, Any]:
    """GetResources' parameters for the alarms carrying every tag of the stack: one call where
    CloudWatch lists each alarm's tags apart (what teardown finds them by)."""
    return {"ResourceTypeFilters": ["cloudwatch:alarm"],
            "TagFilters": [{"Key": key, "Values": [value]} for key, value in sorted(tags.items())]}


def _dns(read: LayerRead, spec: dict[str, Any]) -> None:
    if not spec["dns_zone"]:
        return
    name, identifier = spec["names"]["dns_record"] + ".", spec["names"]["dns_identifier"]
    zones = read("route53", "list_hosted_zones_by_name", DNSName=spec["dns_zone"] + ".", MaxItems="1",
                 part=lambda found: [[z["Id"], z["Name"]] for z in found.get("HostedZones", [])[:1]])
    for zone in zones.get("HostedZones", [])[:1]:
        if zone["Name"] == spec["dns_zone"] + ".":
            # from the app's name on: a zone of many records lists it on its first page; the
            # fingerprint takes this release's record alone (not the other colour's, nor other names)
            records = read("route53", "list_resource_record_sets", HostedZoneId=zone["Id"], StartRecordName=name,
                           part=lambda found: [r for r in found.get("ResourceRecordSets", [])
                                               if r["Name"] == name and r.get("SetIdentifier", "") == identifier])
            read.note(dns_zone_id=zone["Id"], dns_records=records.get("ResourceRecordSets", []))


def _deployed(read: LayerRead, spec: dict[str, Any]) -> None:
    """Read for verify, not a layer's: the AMI the group launches (preflight checks it), the targets' health."""
    read("ec2", "describe_images", ImageIds=[spec["ami_id"]])
    if spec["lb_kind"] != "classic":
        groups = read("elbv2", "describe_target_groups", Names=[spec["names"]["target_group"]])
        for tg in groups.get("TargetGroups", []):
            read("elbv2", "describe_target_health", TargetGroupArn=tg["TargetGroupArn"])


READERS: dict[str, Callable[[LayerRead, dict[str, Any]], None]] = {
    "iam": _iam, "logs": _logs, "network": _network, "security_groups": _security_groups,
    "load_balancer": _load_balancer, "compute": _compute, "dns": _dns, "deployed": _deployed,
}


def read(client: Client, spec: dict[str, Any]) -> Reader:
    """Read every layer of the stack spec describes (names, tags, release, lb_kind, launch_kind,
    dns_zone: the playbooks' naming map and settings), the layers side by side."""
    reader = Reader(client)
    with ThreadPoolExecutor(max_workers=len(READERS)) as pool:
        for done in [pool.submit(read_layer, reader.of(layer), spec) for layer, read_layer in READERS.items()]:
            done.result()
    return reader


def found(reader: Reader) -> dict[str, Any]:
    """What preflight needs of the read, as the readers noted it: the hosted zone's id, its record
    sets from the app's name on (as tasks/records.yml gives them), the release's load balancer's
    DNS name ('' for none)."""
    return {"dns_zone_id": "", "dns_records": [], "lb_dns_name": "", **reader.noted}


def stable(value: Any) -> Any:
    """value without what changes by itself, with lists in a stable order."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        items = [stable(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    return value


def fingerprints(reader: Reader) -> dict[str, str]:
    """Each layer's digest of what it read."""
    found = {}
    for layer in LAYERS:
        parts = reader.parts.get(layer, {})
        seen = {key: stable(parts[key](reader.calls[key]) if key in parts else reader.calls[key])
                for key in reader.layers.get(layer, [])}
        found[layer] = hashlib.sha256(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return found


def record(inputs: str, layers: dict[str, str], now: datetime.datetime,
           full_at: datetime.datetime) -> dict[str, Any]:
    """What a run that applied layers leaves: its inputs, the fingerprints of the layers it found
    settled (the same before and after it), and when a run last applied every layer."""
    return {"version": RECORD_VERSION, "at": now.isoformat(timespec="seconds"),
            "full_at": full_at.isoformat(timespec="seconds"), "inputs": inputs, "layers": layers}


def settled(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """The layers whose fingerprint a run left as it found it."""
    return {layer: after[layer] for layer in LAYERS if layer in before and before[layer] == after.get(layer)}


@dataclass
class Decision:
    skip: list[str]
    apply: list[str]
    why: str


def decide(last: dict[str, Any] | None, inputs: str, found: dict[str, str], unreadable: dict[str, str],
           now: datetime.datetime, max_age: datetime.timedelta) -> Decision:
    """The layers to skip (a prefix of LAYERS) and why the first of the others is applied."""
    why = ""
    if not last:
        why = "no record of a converged run"
    elif max_age <= datetime.timedelta(0):
        why = "skipping is off (stack_converged_hours: 0)"
    elif now - datetime.datetime.fromisoformat(last["full_at"]) > max_age:
        why = f"every layer was last applied at {last['full_at']}, longer ago than stack_converged_hours"
    elif last["inputs"] != inputs:
        why = "the settings, the AMI or the roles changed"
    skip: list[str] = []
    for layer in LAYERS:
        if why:
            break
        if layer in unreadable:
            why = f"{layer}: its state could not be read ({unreadable[layer]})"
        elif last and layer not in last["layers"]:
            why = f"{layer}: the last run changed it, and no run since found it settled"
        elif last and last["layers"][layer] != found[layer]:
            why = f"{layer}: its resources changed since the last converging run"
        else:
            skip.append(layer)
    return Decision(skip, [layer for layer in LAYERS if layer not in skip], why)


def parse_record(raw: str | None, now: datetime.datetime) -> dict[str, Any] | None:
    """The record as written by record(); None when absent, not ours, of another version or from
    the future (beyond CLOCK_SKEW): such a record allows skipping nothing."""
    try:
        value = json.loads(raw or "")
        times = [datetime.datetime.fromisoformat(value[key]) for key in ("at", "full_at")]
        well_formed = (value["version"] == RECORD_VERSION and isinstance(value["inputs"], str)
                       and isinstance(value["layers"], dict)
                       and all(isinstance(v, str) for v in value["layers"].values()))
    except (ValueError, TypeError, KeyError):
        return None
    if not well_formed or any(t.tzinfo is None or t > now + CLOCK_SKEW for t in times):
        return None
    return dict(value)


def snapshot(reader: Reader) -> dict[str, Any]:
    """Every response by call, for verify (json-safe)."""
    return json.loads(json.dumps(reader.calls, default=str))
