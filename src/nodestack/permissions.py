"""The deployer's permissions: the policy files in policies/ rendered for one app and account,
and the check preflight runs before anything is created (iam:SimulatePrincipalPolicy on the
caller, against every action and resource the policy grants)."""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import jinja2
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from nodestack import names
from nodestack.bake import registry
from nodestack.paths import REPO_ROOT

POLICY_DIR = REPO_ROOT / "policies"
DEPLOYER_KINDS = ("bake", "stack-network", "stack", "verify", "promote")  # what a deployer holds
# promote-target: a separate prod account's role that `nodestack promote` assumes; the boundary
# bounds the roles a deployer makes
KINDS = (*DEPLOYER_KINDS, "promote-target", "instance-boundary")
NEEDS_OTHER_ACCOUNT = ("promote-target",)
# What each run needs: site.yml, rollout, blue/green and teardown read as verification does;
# `nodestack promote` as the build account's caller, and with --to-account as the prod account's.
NEEDS = {"bake": ("bake",), "stack": ("stack-network", "stack", "verify"), "verify": ("verify",),
         "promote": ("promote",), "promote-target": ("promote-target",)}
# How to leave the check out, per run, for a caller that may not simulate its own permissions.
SKIP = {"bake": "nodestack bake --no-permission-check", "stack": "-e stack_preflight_permissions=false",
        "verify": "-e stack_preflight_permissions=false", "promote": "nodestack promote --no-permission-check",
        "promote-target": "nodestack promote --no-permission-check"}
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class PolicyError(ValueError):
    """Bad input to a policy: the message names it and the fix."""


@dataclass(frozen=True)
class Scope:
    """Whose resources a policy covers: the app's (every name of the naming map starts with it)
    in one account and region. other_account: for promote, a separate prod account it shares with;
    for promote-target, the build account that shares."""

    app: str
    account: str
    region: str
    partition: str = "aws"
    other_account: str = ""

    def __post_init__(self) -> None:
        if not names.APP_NAME.fullmatch(self.app):
            raise PolicyError(f"app {self.app!r} is not an app name: lower-case letters, digits and '-', "
                              f"as stack_app_name")
        if not _ACCOUNT.match(self.account):
            raise PolicyError(f"account {self.account!r} is not an AWS account id: give its 12 digits")
        if self.other_account and (not _ACCOUNT.match(self.other_account) or self.other_account == self.account):
            raise PolicyError(f"other account {self.other_account!r} is not another AWS account's id: give its 12 "
                              "digits")
        if not _REGION.match(self.region):
            raise PolicyError(f"region {self.region!r} is not an AWS region name such as eu-west-1")


def render(kind: str, scope: Scope) -> dict[str, Any]:
    """The IAM policy document of policies/<kind>.yml for scope."""
    if kind not in KINDS:
        raise PolicyError(f"no policy {kind!r}: choose one of {', '.join(KINDS)}")
    if kind in NEEDS_OTHER_ACCOUNT and not scope.other_account:
        raise PolicyError(f"the {kind} policy is the prod account's: give the build account that shares with it "
                          "(--other-account ACCOUNT)")
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        (POLICY_DIR / f"{kind}.yml").read_text())
    document: dict[str, Any] = yaml.safe_load(template.render(
        app=scope.app, account=scope.account, region=scope.region, partition=scope.partition,
        boundary=names.instance_boundary(scope.app), iam_path=names.iam_path().lstrip("/"),
        bake_lock=names.bake_lock_parameter(scope.app, "*"), stack_lock=names.stack_lock_parameter(scope.app, "*"),
        stack_state=names.stack_state_parameter(scope.app, "*", "*"),
        other_account=scope.other_account, ami_parameter=names.ami_parameter(scope.app, "prod"),
        promotion_record=list(registry.PROMOTION_RECORD), promoted_image_tags=list(registry.PROMOTED_IMAGE_TAGS),
        grant_operations=list(registry.GRANT_OPERATIONS),
        autoscaling_role=registry.autoscaling_role(scope.partition, scope.account)))
    return document


def for_emulator(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the local cloud can enforce it. Its EC2 authorisation takes resources and
    condition keys as AWS does (fix_ec2_authorization), so EC2 actions keep their statements'
    scoping; moto authorises every other call by its action against the resource "*" without
    request context, so there a statement scoped to resources or conditions would deny
    everything: their actions stay exactly as written, unscoped, and the scoping is checked by
    the simulation (see check) and its tests."""
    statements: list[dict[str, Any]] = []
    for statement in document["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        ec2 = [a for a in actions if a.startswith("ec2:")]
        rest = [a for a in actions if not a.startswith("ec2:")]
        if ec2:
            statements.append({**statement, "Action": ec2})
        if rest:
            unscoped = {k: v for k, v in statement.items() if k not in ("Resource", "Condition")}
            statements.append(unscoped | {"Action": rest, "Resource": "*"} | (
                {"Sid": f"{statement['Sid']}NotEc2"} if ec2 and "Sid" in statement else {}))
    return {**document, "Statement": statements}


def principal_of(caller_arn: str) -> str | None:
    """The IAM user or role whose policies apply to a caller (an assumed role's session acts with
    its role's); None for the account's root user, which no policy limits."""
    parts = caller_arn.split(":", 5)
    if len(parts) != 6:
        raise PolicyError(f"{caller_arn!r} is not an ARN")
    partition, service, account, resource = parts[1], parts[2], parts[4], parts[5]
    if resource == "root":
        return None
    if service == "sts" and resource.startswith("assumed-role/"):
        return f"arn:{partition}:iam::{account}:role/{resource.split('/')[1]}"
    return caller_arn


@dataclass(frozen=True)
class Denied:
    action: str
    resource: str
    decision: str
    statement: str

    def __str__(self) -> str:
        where = "" if self.resource == "*" else f" on {self.resource}"
        return f"{self.action}{where} ({self.decision}; statement {self.statement})"


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _satisfying(operator: str, key: str, values: list[str]) -> list[str] | None:
    """Values of key that meet operator against values, one context each; None: the key absent."""
    base = operator.rpartition(":")[2].removesuffix("IfExists")
    if base == "Null":
        return None if values[0] == "true" else ["present"]
    if "Not" in base:  # StringNotEquals, ArnNotLike, ...: a value none of them names
        return ["Name" if key == "aws:TagKeys" and "Name" not in values else f"{values[0]}-other"]
    return values


def _contexts(statement: dict[str, Any], region: str) -> list[list[dict[str, Any]]]:
    """The request contexts the run's calls under statement carry: the region every request has,
    and each value its conditions accept (iam:PassedToService = ec2.amazonaws.com when the
    instance role is passed; each service whose linked role may be created), one at a time; a
    key a condition wants absent is left out."""
    keys: dict[str, list[str]] = {"aws:RequestedRegion": [region]}
    absent: set[str] = set()
    for operator, conditions in statement.get("Condition", {}).items():
        for key, values in conditions.items():
            accepted = _satisfying(operator, key, [str(v).lower() if isinstance(v, bool) else str(v)
                                                   for v in (values if isinstance(values, list) else [values])])
            if accepted is None:
                absent.add(key)
            else:
                keys[key] = accepted
    keys = {key: values for key, values in keys.items() if key not in absent}
    return [[{"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}
             for key, value in zip(keys, chosen, strict=True)]
            for chosen in itertools.product(*keys.values())]


def missing(iam: Any, principal: str, document: dict[str, Any], region: str) -> list[Denied]:
    """Every action and resource that document's Allow statements grant and principal may not use."""
    denied: list[Denied] = []
    for index, statement in enumerate(document["Statement"]):
        if statement.get("Effect") != "Allow":
            continue
        for context in _contexts(statement, region):
            denied += _simulate(iam, principal, statement, context, str(statement.get("Sid", index)))
    return list(dict.fromkeys(denied))  # once each, whichever context denied it


def _simulate(iam: Any, principal: str, statement: dict[str, Any], context: list[dict[str, Any]],
              sid: str) -> list[Denied]:
    denied: list[Denied] = []
    pages = iam.get_paginator("simulate_principal_policy").paginate(
        PolicySourceArn=principal, ActionNames=_as_list(statement["Action"]),
        ResourceArns=_as_list(statement.get("Resource", "*")), ContextEntries=context)
    for page in pages:
        for result in page["EvaluationResults"]:
            if result["EvalDecision"] == "allowed":
                continue
            # one result per action, the most restrictive; each resource's own beneath it
            resources = [r["EvalResourceName"] for r in result.get("ResourceSpecificResults", [])
                         if r["EvalResourceDecision"] != "allowed"] or [result.get("EvalResourceName", "*")]
            denied += [Denied(result["EvalActionName"], resource, result["EvalDecision"], sid)
                       for resource in resources]
    return denied


@dataclass(frozen=True)
class Verdict:
    principal: str
    denied: tuple[Denied, ...] = ()
    unchecked: str = ""
    checked: int = 0  # statements simulated  # why the permissions could not be checked (the run's calls will tell)

    def message(self, run: str, scope: Scope) -> str:
        """One line for a denial: who, what is missing, and the fix."""
        shown = "; ".join(str(d) for d in self.denied[:8]) + ("; ..." if len(self.denied) > 8 else "")
        kinds = " and ".join(NEEDS[run])
        other = f" --other-account {scope.other_account}" if scope.other_account else ""
        return (f"{self.principal} may not make {len(self.denied)} of the calls this {run} run makes: {shown}. "
                f"Nothing was created. Give it the {kinds} policies as "
                f"`nodestack policy KIND --app {scope.app} --account-id {scope.account} --region {scope.region}"
                f"{other}` prints them (docs/aws-setup.md), or run as an identity that has them.")


def on_loopback(endpoint_url: str | None) -> bool:
    """True for the local cloud's endpoint (loopback), where moto's own caller is no IAM entity."""
    host = urllib.parse.urlparse(endpoint_url or "").hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def boundary_arn(scope: Scope) -> str:
    return f"arn:{scope.partition}:iam::{scope.account}:policy/{names.instance_boundary(scope.app)}"


def _with_path(iam: Any, role_arn: str) -> str:
    """An assumed role's ARN with its path (IAM Identity Center's roles have one), which
    SimulatePrincipalPolicy needs; as given when the caller may not read its role."""
    try:
        return str(iam.get_role(RoleName=role_arn.rsplit("/", 1)[1])["Role"]["Arn"])
    except iam.exceptions.ClientError:
        return role_arn


def check(sts: Any, iam: Any, run: str, app: str, region: str, local: bool) -> tuple[Scope, Verdict]:
    """check_as the caller STS names."""
    return check_as(str(sts.get_caller_identity()["Arn"]), iam, run, app, region, local)


def check_as(caller_arn: str, iam: Any, run: str, app: str, region: str, local: bool,
             other_account: str = "") -> tuple[Scope, Verdict]:
    """Simulate, as the caller (its STS ARN, as GetCallerIdentity answered it), every call the run's
    policies grant (before the run changes anything); a stack run also needs the instance roles'
    permissions boundary in place. other_account: the policies' (promote's prod account, or
    promote-target's build account)."""
    principal = principal_of(caller_arn)  # PolicyError unless an ARN
    _, partition, _, _, account, _ = caller_arn.split(":", 5)
    scope = Scope(app=app, account=account, region=region, partition=partition, other_account=other_account)
    if run == "stack":
        try:
            iam.get_policy(PolicyArn=boundary_arn(scope))
        except iam.exceptions.NoSuchEntityException as exc:
            raise PolicyError(
                f"the instance roles' permissions boundary {boundary_arn(scope)} does not exist: an administrator "
                f"creates it from `nodestack policy instance-boundary --app {scope.app} --account-id {scope.account} "
                f"--region {scope.region}` (docs/aws-setup.md); the stack creates instance roles only with it") from exc
    if principal is None:
        return scope, Verdict(caller_arn, unchecked="the account's root user, which no policy limits "
                                                       "(use an IAM role or user for deployments)")
    if ":role/" in principal:
        principal = _with_path(iam, principal)
    try:
        document = needed(run, scope)
        denied = missing(iam, principal, document, region)
    except iam.exceptions.ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in ("NoSuchEntity", "InvalidInput") and local:
            # moto's own caller (arn:aws:sts::...:user/moto) when it does not enforce IAM
            return scope, Verdict(principal, unchecked=f"{principal} is not an IAM user or role of the account")
        if code in ("NoSuchEntity", "InvalidInput"):
            raise PolicyError(f"cannot check the permissions of {caller_arn} as {principal} ({code}): run as an "
                              f"IAM role or user of account {scope.account} that may read its own role "
                              f"(statement CheckOwnPermissions), or skip the check ({SKIP[run]})") from exc
        if code not in ("AccessDenied", "AccessDeniedException"):
            raise
        raise PolicyError(f"{principal} may not check its own permissions (iam:SimulatePrincipalPolicy is denied): "
                          f"give it the statement CheckOwnPermissions of the {NEEDS[run][-1]} policy, or skip the "
                          f"check ({SKIP[run]})") from exc
    return scope, Verdict(principal, tuple(denied), checked=len(document["Statement"]))



def require(caller_arn: str, iam: Any, run: str, app: str, region: str, local: bool,
            other_account: str = "") -> str:
    """check_as, for a run that must stop when the caller lacks a call: PolicyError naming what is
    denied (or why it could not be checked); else what was found, one line for the run's output."""
    try:
        scope, verdict = check_as(caller_arn, iam, run, app, region, local, other_account)
    except (BotoCoreError, ClientError) as exc:
        raise PolicyError(f"cannot check the permissions of {caller_arn} ({run}): {exc}") from exc
    if verdict.denied:
        raise PolicyError(verdict.message(run, scope))
    found = f"not checked, {verdict.unchecked}" if verdict.unchecked else f"every call of the {run} policy allowed"
    return f"permissions of {verdict.principal}: {found}"

def needed(run: str, scope: Scope) -> dict[str, Any]:
    """One document with every statement the run needs (its policy files together)."""
    if run not in NEEDS:
        raise PolicyError(f"no run {run!r}: choose one of {', '.join(NEEDS)}")
    return {"Version": "2012-10-17",
            "Statement": [s for kind in NEEDS[run] for s in render(kind, scope)["Statement"]]}


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"
