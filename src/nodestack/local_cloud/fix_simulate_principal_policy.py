"""iam SimulatePrincipalPolicy: not implemented in moto 5.2 (HTTP 500).

AWS (IAM API reference, SimulatePrincipalPolicy, EvaluationResult, ResourceSpecificResult,
Statement): simulates the identity policies of the user, group or role PolicySourceArn names
(a user's own inline and attached policies and those of its groups; a group's; a role's), plus
the documents of PolicyInputList, for every action of ActionNames on every resource of
ResourceArns (default "*"), with the condition values of ContextEntries. A Deny statement that
applies wins (explicitDeny); else an Allow statement that applies allows; else implicitDeny.
A statement applies when its Action (NotAction) names the action, case-insensitively, with the
wildcards * and ?; its Resource (NotResource) the resource, with * and ? within an ARN's
colon-separated segments (a trailing * spans them); and its Condition holds.

One EvaluationResult per action, as the reference now documents: its EvalDecision is the most
restrictive over the resources, its MatchedStatements the statements behind that decision (only
the Deny ones for explicitDeny, none for implicitDeny) and its MissingContextValues the
condition keys of the statements naming the action and resource that ContextEntries lacks
(such a statement's conditions then fail, unless negated, IfExists or Null). With explicit
ResourceArns, ResourceSpecificResults gives each resource's own decision, statements and missing
keys, and EvalDecisionDetails is present and empty (same account). Results are paged by MaxItems
(default 100) and Marker. An unknown entity is NoSuchEntity (404); a missing or malformed input
is InvalidInput.

Not simulated here, so refused with HTTP 500 like any unimplemented call rather than answered
with a decision AWS might not give: permissions boundaries (PermissionsBoundaryPolicyInputList,
or a role that has one), PolicyExclusionList, ResourcePolicy, ResourceOwner, CallerArn,
ResourceHandlingOption, and policy variables (${...}) in a statement that names the action.
Left out of the answer because they cannot be derived here: the top-level EvalResourceName (AWS
gives the action's ARN template from its service authorization reference) and the statements'
StartPosition/EndPosition (both optional).
"""

from __future__ import annotations

import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.iam.exceptions import InvalidInput, MalformedPolicyDocument, NoSuchEntity
from moto.iam.models import AWSManagedPolicy, IAMBackend, ManagedPolicy
from moto.iam.policy_validation import IAMPolicyDocumentValidator
from moto.iam.responses import IamResponse

# Most restrictive first: the order AWS aggregates the decisions of several resources in.
DECISIONS = ("explicitDeny", "implicitDeny", "allowed")
UNSUPPORTED = ("PermissionsBoundaryPolicyInputList", "PolicyExclusionList", "ResourcePolicy", "ResourceOwner",
               "CallerArn", "ResourceHandlingOption")
DEFAULT_MAX_ITEMS = 100
_SOURCE_ARN = re.compile(r"^arn:[a-z-]+:iam::\d{12}:(user|group|role)/.+$")


@dataclass(frozen=True)
class SourcePolicy:
    """One policy of the simulation: how the response names it, and its statements."""

    policy_id: str
    policy_type: str | None  # Statement.SourcePolicyType; None for a PolicyInputList document
    statements: tuple[dict[str, Any], ...]
    variables: bool  # version 2012-10-17: ${...} in it are policy variables, not text


@dataclass
class Outcome:
    """The decision on one action and resource."""

    decision: str
    matched: list[tuple[int, int]] = field(default_factory=list)  # (policy index, statement index)
    missing: list[str] = field(default_factory=list)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _source_policy(policy_id: str, policy_type: str | None, document: str) -> SourcePolicy:
    parsed = json.loads(document)
    return SourcePolicy(policy_id, policy_type, tuple(_as_list(parsed.get("Statement", []))),
                        parsed.get("Version") == "2012-10-17")


def _managed(policy: ManagedPolicy) -> SourcePolicy:
    default = next(v for v in policy.versions if v.is_default)
    kind = "aws-managed" if isinstance(policy, AWSManagedPolicy) else "user-managed"
    return _source_policy(policy.name, kind, default.document)


def _own(entity: Any, kind: str) -> list[SourcePolicy]:
    """A user's, group's or role's inline policies (typed by the entity) and attached managed ones."""
    return ([_source_policy(name, kind, document) for name, document in entity.policies.items()]
            + [_managed(policy) for policy in entity.managed_policies.values()])


def _principal_policies(backend: IAMBackend, arn: str) -> list[SourcePolicy]:
    """The identity policies of the user (with its groups'), group or role arn names."""
    if not _SOURCE_ARN.match(arn):
        raise InvalidInput(f"PolicySourceArn {arn} is not the ARN of an IAM user, group or role.")
    kind, name = arn.split(":", 5)[5].split("/", 1)[0], arn.rsplit("/", 1)[-1]
    entities: dict[str, Iterable[Any]] = {"user": backend.users.values(), "group": backend.groups.values(),
                                         "role": backend.roles.values()}
    entity = next((e for e in entities[kind] if e.arn == arn), None)
    if entity is None:
        raise NoSuchEntity(f"The {kind} with name {name} cannot be found.")
    if kind == "role" and entity.permissions_boundary_arn:
        raise NotImplementedError("SimulatePrincipalPolicy of a role with a permissions boundary "
                                  "is not implemented by the local cloud")
    policies = _own(entity, kind)
    if kind == "user":
        policies += [p for group in backend.groups.values() if entity in group.users for p in _own(group, "group")]
    return policies


def _input_policies(documents: list[str]) -> list[SourcePolicy]:
    """PolicyInputList: validated as IAM validates a policy, named PolicyInputList.N as AWS shows."""
    policies = []
    for number, document in enumerate(documents, start=1):
        try:
            IAMPolicyDocumentValidator(document).validate()
        except MalformedPolicyDocument as exc:
            raise InvalidInput(f"PolicyInputList.{number}: {exc.message}") from exc
        policies.append(_source_policy(f"PolicyInputList.{number}", None, document))
    return policies


def _glob(pattern: str, text: str, ignore_case: bool = False) -> bool:
    """* any characters, ? one character, everything else itself."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE if ignore_case else 0) is not None


def _resource_glob(pattern: str, resource: str) -> bool:
    """A Resource element against a resource: wildcards stay within an ARN segment, except a * that
    ends one, which may match past the colons (IAM JSON policy elements: Resource)."""
    parts = []
    for i, c in enumerate(pattern):
        if c == "*":
            parts.append(".*" if i + 1 == len(pattern) or pattern[i + 1] == ":" else "[^:]*")
        else:
            parts.append("[^:]" if c == "?" else re.escape(c))
    return re.fullmatch("".join(parts), resource) is not None


def _arn_like(arn: str, pattern: str) -> bool:
    """ArnLike/ArnEquals: each of the six colon-delimited components matched on its own."""
    actual, expected = arn.split(":", 5), pattern.split(":", 5)
    return len(expected) == len(actual) == 6 and all(_glob(e, a) for e, a in zip(expected, actual))


def _date(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(text), tz=timezone.utc)
    except ValueError:
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    return lambda actual, expected: compare(float(actual), float(expected))


def _dated(compare: Callable[[datetime, datetime], bool]) -> Callable[[str, str], bool]:
    return lambda actual, expected: compare(_date(actual), _date(expected))


# The condition operators of the IAM JSON policy reference: (request value, policy value) -> match.
COMPARATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": operator.eq,
    "StringEqualsIgnoreCase": lambda a, e: a.lower() == e.lower(),
    "StringLike": lambda a, e: _glob(e, a),
    "NumericEquals": _numeric(operator.eq),
    "NumericLessThan": _numeric(operator.lt),
    "NumericLessThanEquals": _numeric(operator.le),
    "NumericGreaterThan": _numeric(operator.gt),
    "NumericGreaterThanEquals": _numeric(operator.ge),
    "DateEquals": _dated(operator.eq),
    "DateLessThan": _dated(operator.lt),
    "DateLessThanEquals": _dated(operator.le),
    "DateGreaterThan": _dated(operator.gt),
    "DateGreaterThanEquals": _dated(operator.ge),
    "Bool": lambda a, e: a.lower() == e.lower(),
    "BinaryEquals": operator.eq,
    "IpAddress": lambda a, e: ipaddress.ip_address(a) in ipaddress.ip_network(e, strict=False),
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
}
# A negated operator holds when its positive one does not (and when the key is absent).
NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
           "StringNotLike": "StringLike", "NumericNotEquals": "NumericEquals", "DateNotEquals": "DateEquals",
           "NotIpAddress": "IpAddress", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def _matches(compare: Callable[[str, str], bool], actual: str, expected: list[str]) -> bool:
    for value in expected:
        try:
            if compare(actual, value):
                return True
        except (ValueError, OverflowError):  # a request value of the wrong type matches nothing
            continue
    return False


def _condition_holds(operator_name: str, values: list[str] | None, expected: list[str]) -> bool:
    """One operator on one key, with AWS's rules for absent keys, IfExists, Null and the
    ForAllValues/ForAnyValue set operators."""
    qualifier, _, base = operator_name.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base == "Null":
        return (values is None) == (expected[0].lower() == "true")
    positive = NEGATED.get(base, base)
    if positive not in COMPARATORS:
        raise InvalidInput(f"Unsupported condition operator {operator_name}.")
    if values is None:
        if if_exists or qualifier == "ForAllValues":
            return True
        return qualifier != "ForAnyValue" and base in NEGATED

    def value_ok(value: str) -> bool:
        return _matches(COMPARATORS[positive], value, expected) != (base in NEGATED)

    if qualifier == "ForAllValues":
        return all(value_ok(v) for v in values)
    if qualifier == "ForAnyValue" or base not in NEGATED:
        return any(value_ok(v) for v in values)
    return all(value_ok(v) for v in values)


def _names_action(statement: dict[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(_glob(p, action, ignore_case=True) for p in _as_list(statement["NotAction"]))
    return any(_glob(p, action, ignore_case=True) for p in _as_list(statement.get("Action", [])))


def _names_resource(statement: dict[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        return not any(_resource_glob(p, resource) for p in _as_list(statement["NotResource"]))
    return any(_resource_glob(p, resource) for p in _as_list(statement.get("Resource", [])))


def _conditions_hold(statement: dict[str, Any], context: dict[str, list[str]], missing: list[str]) -> bool:
    """Every operator on every key must hold; the keys context lacks go to missing."""
    holds = True
    for operator_name, keys in statement.get("Condition", {}).items():
        for key, expected in keys.items():
            values = context.get(key.lower())
            if values is None and key not in missing:
                missing.append(key)
            holds = _condition_holds(operator_name, values, [_text(e) for e in _as_list(expected)]) and holds
    return holds


def _uses_variables(policy: SourcePolicy, statement: dict[str, Any]) -> bool:
    return policy.variables and "${" in json.dumps([statement.get(k) for k in ("Resource", "NotResource",
                                                                              "Condition")])


def _decide(policies: list[SourcePolicy], action: str, resource: str, context: dict[str, list[str]]) -> Outcome:
    allows: list[tuple[int, int]] = []
    denies: list[tuple[int, int]] = []
    missing: list[str] = []
    for p, policy in enumerate(policies):
        for s, statement in enumerate(policy.statements):
            if not _names_action(statement, action):
                continue
            if _uses_variables(policy, statement):
                raise NotImplementedError("SimulatePrincipalPolicy of a statement with policy variables "
                                          "is not implemented by the local cloud")
            # the keys of a statement that names the action and resource are missing even when
            # another of its conditions fails
            if _names_resource(statement, resource) and _conditions_hold(statement, context, missing):
                (denies if statement.get("Effect") == "Deny" else allows).append((p, s))
    if denies:
        return Outcome("explicitDeny", denies, missing)
    return Outcome("allowed", allows, missing) if allows else Outcome("implicitDeny", [], missing)


def _statements(policies: list[SourcePolicy], matched: Iterable[tuple[int, int]]) -> list[dict[str, str]]:
    """Response Statement elements; one per matched statement, so two of one policy appear twice."""
    shown = []
    for p, _ in matched:
        policy = policies[p]
        entry = {"SourcePolicyId": policy.policy_id}
        if policy.policy_type is not None:
            entry["SourcePolicyType"] = policy.policy_type
        shown.append(entry)
    return shown


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def evaluation_result(policies: list[SourcePolicy], action: str, resources: list[str],
                      context: dict[str, list[str]], per_resource: bool) -> dict[str, Any]:
    """One action's EvaluationResult over every resource."""
    outcomes = [_decide(policies, action, resource, context) for resource in resources]
    decision = min((o.decision for o in outcomes), key=DECISIONS.index)
    result: dict[str, Any] = {
        "EvalActionName": action,
        "EvalDecision": decision,
        "MatchedStatements": _statements(policies, _unique(m for o in outcomes if o.decision == decision
                                                           for m in o.matched)),
        "MissingContextValues": _unique(k for o in outcomes for k in o.missing),
    }
    if per_resource:
        result["ResourceSpecificResults"] = [
            {"EvalResourceName": resource, "EvalResourceDecision": o.decision,
             "MatchedStatements": _statements(policies, o.matched), "MissingContextValues": o.missing}
            for resource, o in zip(resources, outcomes)]
        result["EvalDecisionDetails"] = {}  # same account: present and empty, as documented
    return result


def _context(entries: list[dict[str, Any]]) -> dict[str, list[str]]:
    """ContextEntries by key name; condition keys are case-insensitive."""
    context: dict[str, list[str]] = {}
    for entry in entries:
        if not entry.get("ContextKeyName"):
            raise InvalidInput("ContextEntries: every entry needs a ContextKeyName.")
        context[entry["ContextKeyName"].lower()] = [_text(v) for v in entry.get("ContextKeyValues") or []]
    return context


def _page(items: list[dict[str, Any]], marker: str | None, max_items: int | None) -> dict[str, Any]:
    size = DEFAULT_MAX_ITEMS if max_items is None else max_items
    if not 1 <= size <= 1000:
        raise InvalidInput("MaxItems must be between 1 and 1000.")
    if marker is None:
        start = 0
    elif marker.isdigit() and int(marker) < len(items):
        start = int(marker)
    else:
        raise InvalidInput(f"Invalid Marker {marker}.")
    page: dict[str, Any] = {"EvaluationResults": items[start:start + size], "IsTruncated": start + size < len(items)}
    if page["IsTruncated"]:
        page["Marker"] = str(start + size)
    return page


def simulate_principal_policy(self: IamResponse) -> ActionResult:
    for name in UNSUPPORTED:
        if self._get_param(name):
            raise NotImplementedError(f"SimulatePrincipalPolicy with {name} is not implemented by the local cloud")
    source, actions = self._get_param("PolicySourceArn"), self._get_param("ActionNames")
    if not source:
        raise InvalidInput("PolicySourceArn is required.")
    if not actions:
        raise InvalidInput("ActionNames is required: give at least one action, such as iam:CreateUser.")
    for action in actions:
        prefix, _, name = action.partition(":")
        if not prefix or not name:
            raise InvalidInput(f"Action {action} must include the service identifier, such as iam:CreateUser.")
    policies = _principal_policies(self.backend, source) + _input_policies(self._get_param("PolicyInputList") or [])
    resources = self._get_param("ResourceArns") or ["*"]
    context = _context(self._get_param("ContextEntries") or [])
    per_resource = resources != ["*"]
    results = [evaluation_result(policies, action, resources, context, per_resource) for action in actions]
    return ActionResult(_page(results, self._get_param("Marker"), self._get_param("MaxItems")))


def apply() -> None:
    IamResponse.simulate_principal_policy = simulate_principal_policy  # type: ignore[attr-defined]
