"""`nodestack promote --env prod`: the step between dev's rollout and prod's. It takes the prod AMI
the bake published (or --ami), refuses it unless it is dev-tested (its app's commit, tag AppCommit,
and Node.js version are what the dev stack runs now: dev and prod images differ in how they run the
app, so the same commit is the test, not the same image; not the same tag name, which can be
force-moved to another commit between the two bakes), and records who promoted which AMI and when:
tags on the AMI (PromotedBy, PromotedAt, PromotedTo) and prod's SSM parameter, rewritten with a
description saying so (SSM keeps LastModifiedUser too). prod's group moves to it only through
playbooks/rollout.yml.

With --to-account (separate dev and prod accounts), in this order: for snapshots under a customer
managed KMS key a grant to the prod account's Auto Scaling service-linked role (made with the prod
account's credentials, as AWS requires); the AMI's launch permission for the prod account (AWS:
launching a shared AMI needs only that, not its snapshots' createVolumePermission); the AMI's tags
in the prod account (registry.PROMOTED_IMAGE_TAGS: an account's tags on a shared image are its own,
the owner's are not shared), set with the prod account's credentials;
the record in this account; the prod account's own /<app>/prod/ami/latest last. If a step after
the sharing fails, the launch permission this run added is removed again. Only this command
writes that parameter: the prod account never sees an AMI nobody promoted.

Before it reads or changes anything it simulates its calls as the caller (policies/promote.yml,
iam:SimulatePrincipalPolicy, as the bake and the stack do), and with --to-account as the prod
account's identity (promote-target.yml): a missing grant stops it naming the action."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nodestack import names, permissions
from nodestack.bake import inventory_vars
from nodestack.bake.registry import (
    APP_COMMIT,
    APP_REVISION,
    GRANT_OPERATIONS,
    NODEJS_VERSION,
    PROMOTED_AT,
    PROMOTED_BY,
    PROMOTED_IMAGE_TAGS,
    PROMOTED_TO,
    PROMOTION_RECORD,
    VALIDATED,
    autoscaling_role,
    tags_of,
)
from nodestack.bake.target import BakeError, Target, resolve_target
from nodestack.paths import REPO_ROOT

ENV = "prod"
DEV = "dev"
# What the key policy must allow the prod account (Example 2's two statements).
KEY_USE = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"}


class PromoteError(BakeError):
    """A promotion refused: what is wrong and what to do; nothing was changed."""


@dataclass(frozen=True)
class Running:
    """An image the dev stack launches now, and from where."""

    group: str
    ami_id: str
    revision: str
    commit: str  # "" for an image baked before AMIs carried AppCommit
    nodejs: str

    def __str__(self) -> str:
        return (f"{self.revision} at {self.commit or 'an unrecorded commit'} on Node.js {self.nodejs} "
                f"({self.ami_id}, group {self.group})")


@dataclass
class Plan:
    app: str
    ami_id: str
    revision: str
    commit: str
    nodejs: str
    account: str  # where prod's parameter lives: this account or --to-account
    parameter: str
    steps: list[str] = field(default_factory=list)  # what this run changes, in order
    share: bool = False  # the prod account's launch permission is missing
    record: bool = False  # the record (and, with --to-account, the prod account's tags) and the parameter
    previous: str = ""  # an earlier promotion of this AMI to the same account, as its tags say


def app_name(given: str | None) -> str:
    """--app, else the prod inventory's stack_app_name, as Ansible resolves it."""
    if given:
        app = given
    else:
        try:
            app = str(inventory_vars.resolve(REPO_ROOT / "inventories" / ENV, ["stack_app_name"], {})
                      .get("stack_app_name") or "")
        except inventory_vars.InventoryVarsError as exc:
            raise PromoteError(f"cannot read stack_app_name of inventories/{ENV}: {exc}; or give --app") from exc
    if not names.APP_NAME.fullmatch(app):
        raise PromoteError(f"app {app!r} is not an app name (stack_app_name): 2-31 lowercase letters, digits "
                           "or '-', starting with a letter")
    return app


def candidate(ec2: Any, ssm: Any, app: str, account: str, ami_id: str | None) -> dict[str, Any]:
    """The prod AMI to promote: --ami, else what the bake published in this account; it must be this
    account's, validated by the bake, and the app's prod image."""
    if not ami_id:
        parameter = names.ami_parameter(app, ENV)
        try:
            ami_id = str(ssm.get_parameter(Name=parameter)["Parameter"]["Value"])
        except ssm.exceptions.ParameterNotFound as exc:
            raise PromoteError(f"no prod AMI to promote: {parameter} does not exist in account {account}; bake one "
                               f"(`nodestack bake --env {ENV}`) or give --ami") from exc
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [ami_id]}])["Images"]
    if not images:
        raise PromoteError(f"{ami_id} is not an AMI of account {account} in this region: promote an AMI the bake "
                           f"made here (`nodestack bake --env {ENV}`)")
    image: dict[str, Any] = images[0]
    tags = tags_of(image)
    wrong = [f"{key}={tags.get(key, 'unset')}" for key, wanted in
             ((VALIDATED, "true"), ("App", app), ("Environment", ENV)) if tags.get(key) != wanted]
    if wrong:
        raise PromoteError(f"{ami_id} is not a validated {ENV} AMI of {app} ({', '.join(wrong)}): promote one the "
                           f"bake validated (`nodestack bake --env {ENV}`)")
    missing = [key for key in (APP_REVISION, APP_COMMIT, NODEJS_VERSION) if not tags.get(key)]
    if missing:
        before = f" (baked before AMIs recorded their app's commit as {APP_COMMIT})" if missing == [APP_COMMIT] else ""
        raise PromoteError(f"{ami_id} has no {' or '.join(missing)} tag{before}, so it cannot be compared with what "
                           f"dev runs: bake it again (`nodestack bake --env {ENV}`)")
    return image


def dev_running(ec2: Any, autoscaling: Any, app: str) -> list[Running]:
    """What the dev stack's Auto Scaling groups (tags App=app, Environment=dev) launch now: their
    launch template version's image (the group's version, $Default as the stack sets it) or their
    launch configuration's."""
    filters = [{"Name": "tag:App", "Values": [app]}, {"Name": "tag:Environment", "Values": [DEV]}]
    launched: dict[str, str] = {}
    for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate(Filters=filters):
        for group in page["AutoScalingGroups"]:
            template = group.get("LaunchTemplate") or {}
            if template:
                version = ec2.describe_launch_template_versions(
                    LaunchTemplateId=template["LaunchTemplateId"],
                    Versions=[str(template.get("Version") or "$Default")])["LaunchTemplateVersions"][0]
                launched[group["AutoScalingGroupName"]] = version["LaunchTemplateData"].get("ImageId", "")
            elif group.get("LaunchConfigurationName"):
                config = autoscaling.describe_launch_configurations(
                    LaunchConfigurationNames=[group["LaunchConfigurationName"]])["LaunchConfigurations"][0]
                launched[group["AutoScalingGroupName"]] = config.get("ImageId", "")
    ids = sorted({ami for ami in launched.values() if ami})
    images = {i["ImageId"]: tags_of(i) for i in ec2.describe_images(ImageIds=ids)["Images"]} if ids else {}
    found = {name: images.get(ami, {}) for name, ami in launched.items()}
    return [Running(name, ami, found[name].get(APP_REVISION, "unknown"), found[name].get(APP_COMMIT, ""),
                    found[name].get(NODEJS_VERSION, "unknown")) for name, ami in sorted(launched.items())]


def check_dev_tested(image: dict[str, Any], running: list[Running], app: str) -> Running:
    """The dev group running the candidate's app commit and Node.js version; PromoteError naming both
    otherwise. The commit, not the tag name: a tag moved between the dev and the prod bake names two
    commits, and an image without AppCommit matches nothing."""
    tags = tags_of(image)
    revision, commit, nodejs = tags[APP_REVISION], tags[APP_COMMIT], tags[NODEJS_VERSION]
    for dev in running:
        if (dev.commit, dev.nodejs) == (commit, nodejs):
            return dev
    wanted = f"{image['ImageId']} (prod) runs {app} {revision} at {commit} on Node.js {nodejs}"
    if not running:
        raise PromoteError(f"{wanted}, but no dev stack of {app} runs in this account and region (no Auto Scaling "
                           f"group tagged App={app}, Environment={DEV}): deploy and roll out dev first")
    seen = "; ".join(str(d) for d in running)
    unrecorded = [d.ami_id for d in running if not d.commit]
    before = (f" ({', '.join(unrecorded)} baked before AMIs recorded their app's commit as {APP_COMMIT}: a dev "
              "bake and rollout records it)") if unrecorded else ""
    raise PromoteError(f"{wanted}, but the dev stack runs {seen}: it is not dev-tested{before}. Roll {commit} out to "
                       f"dev first (`nodestack bake --env {DEV} --app-revision {commit}`, then playbooks/rollout.yml "
                       f"-i inventories/{DEV}), or promote a prod AMI of dev's commit")


def as_other_account(target: Target, role_arn: str | None, profile: str | None, app: str) -> Target:
    """The prod account's side: a role assumed with the build account's credentials, or a named profile;
    identified (not the build account's caller)."""
    if role_arn:
        credentials = target.client("sts").assume_role(RoleArn=role_arn,
                                                       RoleSessionName=f"nodestack-promote-{app}")["Credentials"]
        keys = {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"]}
    else:
        found = boto3.Session(profile_name=profile).get_credentials()
        if found is None:
            raise PromoteError(f"profile {profile} has no credentials: see ~/.aws/config")
        frozen = found.get_frozen_credentials()
        keys = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
                **({"AWS_SESSION_TOKEN": frozen.token} if frozen.token else {})}
    env = {k: v for k, v in target.aws_env.items() if k not in ("AWS_SESSION_TOKEN", "AWS_PROFILE")}
    return replace(target, aws_env={**env, **keys}, caller=None).identified()


def check_permissions(target: Target, caller_arn: str, run: str, app: str, other_account: str) -> None:
    """Every call of one side of the promotion simulated as its caller before anything is read or
    changed: run "promote" (the build account) or "promote-target" (the prod account's role, whose
    other account is the build account); PromoteError naming what is denied."""
    try:
        found = permissions.require(caller_arn, target.client("iam"), run, app, target.region, target.local,
                                    other_account)
        print(f"promote: {found}", flush=True)
    except permissions.PolicyError as exc:
        raise PromoteError(str(exc)) from exc


def key_policy_allows(policy: dict[str, Any], account: str) -> bool:
    """Whether a key policy lets account use the key and create grants (Example 2). A statement with a
    condition proves nothing: whether a request meets it is not known here (kms:GrantIsForAWSResource,
    for one, is never true for the grant promote creates itself)."""
    allowed: set[str] = set()
    for statement in policy.get("Statement", []):
        if statement.get("Condition"):
            continue
        principals = (statement.get("Principal") or {})
        given = principals.get("AWS", []) if isinstance(principals, dict) else principals
        given = [given] if isinstance(given, str) else given
        if statement.get("Effect") != "Allow" or not any(account in str(p) for p in given):
            continue
        actions = statement.get("Action", [])
        allowed.update([actions] if isinstance(actions, str) else actions)
    return "kms:*" in allowed or (KEY_USE <= allowed and "kms:CreateGrant" in allowed)


def key_policy_statements(account: str, partition: str) -> list[dict[str, Any]]:
    """The two statements the build account adds to its key's policy for the prod account (Example 2:
    the grant is created by the prod account itself, so no kms:GrantIsForAWSResource condition)."""
    root = f"arn:{partition}:iam::{account}:root"
    return [{"Sid": f"AllowUseOfTheKeyBy{account}", "Effect": "Allow", "Principal": {"AWS": root},
             "Action": sorted(KEY_USE), "Resource": "*"},
            {"Sid": f"AllowGrantsFor{account}", "Effect": "Allow", "Principal": {"AWS": root},
             "Action": "kms:CreateGrant", "Resource": "*"}]


def customer_keys(ec2: Any, kms: Any, image: dict[str, Any], to_account: str, partition: str) -> list[str]:
    """The customer managed keys of the image's encrypted snapshots, each checked to allow to_account;
    PromoteError for an AWS managed key (it cannot be shared) or a key policy that does not allow it."""
    snapshot_ids = [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get(
        "SnapshotId")]
    snapshots = ec2.describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"] if snapshot_ids else []
    arns: list[str] = []
    for key in sorted({s["KmsKeyId"] for s in snapshots if s.get("Encrypted") and s.get("KmsKeyId")}):
        metadata = kms.describe_key(KeyId=key)["KeyMetadata"]
        if metadata.get("KeyManager") != "CUSTOMER":
            raise PromoteError(f"{image['ImageId']}'s snapshots are encrypted with the AWS managed key {key}, which "
                               f"cannot be shared with account {to_account}: bake with a customer managed key")
        policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
        if not key_policy_allows(policy, to_account):
            statements = json.dumps(key_policy_statements(to_account, partition))
            raise PromoteError(f"the policy of key {metadata['Arn']}, which encrypts {image['ImageId']}'s snapshots, "
                               f"does not let account {to_account} use it: an administrator adds these statements "
                               f"(docs/aws-setup.md): {statements}")
        arns.append(str(metadata["Arn"]))
    return arns


def grant_key(prod_kms: Any, key: str, account: str, partition: str, app: str) -> None:
    """With the prod account's credentials: its Auto Scaling service-linked role may use the build
    account's key. Named, so the same request again returns the same grant instead of a second."""
    prod_kms.create_grant(KeyId=key, GranteePrincipal=autoscaling_role(partition, account),
                          Operations=list(GRANT_OPERATIONS), Name=f"{app}-{ENV}-autoscaling")


def plan(ec2: Any, prod_ec2: Any, prod_ssm: Any, image: dict[str, Any], app: str, account: str, to_account: str,
         keys: list[str]) -> Plan:
    """What this promotion still has to do; nothing when it was done already."""
    tags = tags_of(image)
    ami_id = image["ImageId"]
    parameter = names.ami_parameter(app, ENV)
    found = Plan(app, ami_id, tags[APP_REVISION], tags[APP_COMMIT], tags[NODEJS_VERSION], to_account or account,
                 parameter)
    tagged_there = True
    if to_account:
        permissions = ec2.describe_image_attribute(ImageId=ami_id, Attribute="launchPermission")["LaunchPermissions"]
        found.share = {"UserId": to_account} not in permissions
        seen = prod_ec2.describe_images(Filters=[{"Name": "image-id", "Values": [ami_id]}])["Images"]
        there = tags_of(seen[0]) if seen else {}
        tagged_there = there.get(VALIDATED) == "true" and there.get(PROMOTED_TO) == to_account
    try:
        current = str(prod_ssm.get_parameter(Name=parameter)["Parameter"]["Value"])
    except prod_ssm.exceptions.ParameterNotFound:
        current = ""
    promoted_here = tags.get(PROMOTED_TO) == found.account and tags.get(PROMOTED_AT)
    if promoted_here:
        found.previous = f"by {tags.get(PROMOTED_BY, 'unknown')} at {tags[PROMOTED_AT]}"
    found.record = not (current == ami_id and promoted_here and tagged_there)
    # a grant cannot be read back without kms:ListGrants: made (named, so never twice) whenever anything changes
    if found.share or found.record:
        found.steps += [f"grant {to_account}'s Auto Scaling service-linked role the use of key {key}" for key in keys]
    if found.share:
        found.steps.append(f"share {ami_id} with account {to_account} (launch permission)")
    if found.record and to_account:
        found.steps.append(f"tag {ami_id} in account {to_account} ({', '.join(PROMOTED_IMAGE_TAGS)}: an account's "
                           "tags on a shared image are its own)")
    if found.record:
        found.steps += [f"record the promotion on {ami_id} ({', '.join(PROMOTION_RECORD)})",
                        f"set {parameter} in account {found.account} to {ami_id} (was {current or 'unset'})"]
    return found


def apply(target: Target, prod: Target, image: dict[str, Any], found: Plan, to_account: str, keys: list[str],
          who: str, partition: str) -> str:
    """Make the plan's changes: grants, sharing, the prod account's tags, the record, the parameter
    last; a launch permission this run added is removed again if a later step fails. Returns the time."""
    ec2, ami_id = target.client("ec2"), image["ImageId"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for key in keys if found.steps else []:
        grant_key(prod.client("kms"), key, to_account, partition, found.app)
    shared = False
    try:
        if found.share:
            ec2.modify_image_attribute(ImageId=ami_id, LaunchPermission={"Add": [{"UserId": to_account}]})
            shared = True
        if to_account and not prod.client("ec2").describe_images(
                Filters=[{"Name": "image-id", "Values": [ami_id]}])["Images"]:
            raise PromoteError(f"account {to_account} does not see {ami_id} after sharing it: is it the same region "
                               f"({target.region})?")
        if found.record:
            record = {PROMOTED_BY: who[:256], PROMOTED_AT: when, PROMOTED_TO: found.account}
            if to_account:
                prod.client("ec2").create_tags(Resources=[ami_id], Tags=[{"Key": k, "Value": v} for k, v in {
                    VALIDATED: "true", APP_REVISION: found.revision, APP_COMMIT: found.commit,
                    NODEJS_VERSION: found.nodejs, **record}.items()])
            ec2.create_tags(Resources=[ami_id], Tags=[{"Key": k, "Value": v} for k, v in record.items()])
            prod.client("ssm").put_parameter(
                Name=found.parameter, Value=ami_id, Type="String", Overwrite=True,
                Description=f"prod AMI {ami_id} ({found.revision} at {found.commit}, Node.js {found.nodejs}), "
                            f"dev-tested, promoted by {who} at {when} (nodestack promote)"[:1024])
    except (BotoCoreError, ClientError, PromoteError):
        if shared:  # nothing half-made: the prod account does not keep an AMI it was not given
            ec2.modify_image_attribute(ImageId=ami_id, LaunchPermission={"Remove": [{"UserId": to_account}]})
            print(f"promote: failed after sharing {ami_id}; its launch permission for account {to_account} was "
                  "removed again", file=sys.stderr)
        raise
    return when


def run(args: argparse.Namespace) -> int:
    try:
        target = resolve_target(args.target == "local")
        if args.to_account and not (args.to_role_arn or args.to_profile):
            raise PromoteError(f"--to-account {args.to_account} needs the prod account's credentials: "
                               "--to-role-arn ARN (assumed with these credentials) or --to-profile NAME")
        if (args.to_role_arn or args.to_profile) and not args.to_account:
            raise PromoteError("--to-role-arn and --to-profile are for --to-account ACCOUNT (the prod account's id)")
        if args.to_account and not (len(args.to_account) == 12 and args.to_account.isdigit()):
            raise PromoteError(f"--to-account {args.to_account!r} is not an AWS account id: give its 12 digits")
        app = app_name(args.app)
        ec2, ssm, autoscaling = target.client("ec2"), target.client("ssm"), target.client("autoscaling")
        target = target.identified()
        me = target.identity()
        account, who, partition = me.account, me.arn, me.arn.split(":")[1]
        if args.to_account == account:
            raise PromoteError(f"--to-account {account} is this account: leave it out to promote within one account")
        if args.check_permissions:
            check_permissions(target, who, "promote", app, args.to_account or "")
        prod = target
        if args.to_account:
            prod = as_other_account(target, args.to_role_arn, args.to_profile, app)
            prod_arn, prod_account = prod.identity().arn, prod.identity().account
            if prod_account != args.to_account:
                raise PromoteError(f"the prod credentials ({args.to_role_arn or args.to_profile}) are of account "
                                   f"{prod_account}, not --to-account {args.to_account}")
            if args.check_permissions:
                check_permissions(prod, prod_arn, "promote-target", app, account)
        image = candidate(ec2, ssm, app, account, args.ami)
        dev = check_dev_tested(image, dev_running(ec2, autoscaling, app), app)
        print(f"promote: {image['ImageId']} ({image.get('Name', '')}) runs {app} at {dev.commit} on Node.js "
              f"{dev.nodejs}, as dev does ({dev}): dev-tested")
        keys = customer_keys(ec2, target.client("kms"), image, args.to_account, partition) if args.to_account else []
        found = plan(ec2, prod.client("ec2"), prod.client("ssm"), image, app, account, args.to_account or "", keys)
        if not found.steps:
            print(f"promote: {found.ami_id} is already promoted to {ENV} (account {found.account}) {found.previous}: "
                  f"{found.parameter} names it; nothing changed")
            return 0
        verb = "would" if args.dry_run else "will"
        for step in found.steps:
            print(f"promote: {verb} {step}")
        if args.dry_run:
            print("promote: dry run, nothing changed")
            return 0
        when = apply(target, prod, image, found, args.to_account or "", keys, who, partition)
        print(f"promote: {found.ami_id} promoted to {ENV} by {who} at {when}: {found.parameter} in account "
              f"{found.account} names it. prod's group moves to it only through playbooks/rollout.yml "
              f"(-i inventories/{ENV})")
    except (BotoCoreError, ClientError) as exc:
        print(f"promote: {exc}", file=sys.stderr)
        return 2
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("promote", help="promote a dev-tested prod AMI: record who and when, set prod's parameter "
                                            "(and share it with a separate prod account)")
    parser.add_argument("--env", required=True, choices=[ENV], help="the environment promoted to (prod)")
    parser.add_argument("--target", choices=["local", "aws"], default="local",
                        help="local: the local cloud (default); aws: the AWS account of these credentials")
    parser.add_argument("--ami", default=None, help=f"the AMI to promote (default: what /<app>/{ENV}/ami/latest "
                                                    "names in this account, the bake's newest)")
    parser.add_argument("--app", default=None, help=f"the app's name (default: inventories/{ENV}'s stack_app_name)")
    parser.add_argument("--to-account", default=None, metavar="ACCOUNT",
                        help="a separate prod account (12 digits): share the AMI with it and set its parameter")
    credentials = parser.add_mutually_exclusive_group()
    credentials.add_argument("--to-role-arn", default=None, metavar="ARN",
                             help="with --to-account: a role of the prod account these credentials assume")
    credentials.add_argument("--to-profile", default=None, metavar="NAME",
                             help="with --to-account: a named profile holding the prod account's credentials")
    parser.add_argument("--dry-run", action="store_true", help="check and show what would change; change nothing")
    parser.add_argument("--no-permission-check", dest="check_permissions", action="store_false",
                        help="skip simulating promote's calls as the caller (policies/promote.yml, and the prod "
                             "account's promote-target.yml) first; only for a caller that may not simulate its own "
                             "permissions")
    parser.set_defaults(func=run)
