"""The deployer policies of policies/: what they may grant, that every action exists, and the
caller-to-principal rule preflight simulates as."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import botocore.session
import pytest

from nodestack import names, permissions
from nodestack.local_cloud import fix_simulate_principal_policy

SCOPE = permissions.Scope(app="nodeapp", account="111122223333", region="eu-west-1", other_account="444455556666")
# IAM's service prefixes and the botocore models whose operations they authorise.
MODELS = {"ec2": ["ec2"], "autoscaling": ["autoscaling"], "elasticloadbalancing": ["elbv2", "elb"],
          "cloudwatch": ["cloudwatch"], "route53": ["route53"], "iam": ["iam"], "ssm": ["ssm"], "kms": ["kms"],
          "logs": ["logs"], "acm": ["acm"], "sns": ["sns"], "sts": ["sts"], "tag": ["resourcegroupstaggingapi"]}
NOT_OPERATIONS = {"iam:PassRole"}  # a permission checked when a role is handed to a service, not a call
# the SSM agent's own calls (registration, Session Manager's channels): of no SDK, so of no botocore model
AGENT_ONLY = {"ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
              "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"}


def _statements() -> list[tuple[str, dict[str, Any]]]:
    return [(kind, s) for kind in permissions.KINDS for s in permissions.render(kind, SCOPE)["Statement"]]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_every_policy_fits_aws_limit_of_a_managed_policy() -> None:
    """6,144 characters without white space (IAM quotas), for the longest app name and region."""
    longest = permissions.Scope(app="a" * 31, account="111122223333", region="ap-southeast-2", partition="aws-us-gov",
                                other_account="444455556666")
    for kind in permissions.KINDS:
        assert len(json.dumps(permissions.render(kind, longest), separators=(",", ":"))) <= 6144, kind


def test_every_action_is_an_operation_of_its_service() -> None:
    session = botocore.session.get_session()
    operations = {prefix: {op for model in models for op in session.get_service_model(model).operation_names}
                  for prefix, models in MODELS.items()}
    unknown = [f"{kind}: {action}" for kind, s in _statements() for action in _actions(s)
               if action not in NOT_OPERATIONS | AGENT_ONLY
               and action.split(":")[1] not in operations[action.split(":")[0]]]
    assert unknown == []


def test_no_wildcard_action_and_every_statement_named() -> None:
    for kind, statement in _statements():
        assert statement["Effect"] == "Allow" and statement.get("Sid"), (kind, statement)
        assert not [a for a in _actions(statement) if "*" in a], (kind, statement["Sid"])
    sids = [f"{kind}:{s['Sid']}" for kind, s in _statements()]
    assert len(sids) == len(set(sids))


def test_resources_are_the_apps_or_unscoped_for_calls_without_arns() -> None:
    for kind, statement in _statements():
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            assert resource == "*" or resource.startswith("arn:aws:"), (kind, statement["Sid"], resource)
            if resource.startswith("arn:aws:ec2:"):
                # EC2 picks its resources' ids: an ARN names the type only, the App tag (given at
                # creation, or required on the resource) scopes it; a launch names the parts it is
                # launched from, which may be anyone's (the source image, the subnet)
                assert resource.endswith("/*") and ("/App" in str(statement["Condition"]) or "ec2:Owner" in str(
                    statement["Condition"]) or statement["Action"] == ["ec2:RunInstances"]), (kind, statement["Sid"])
                continue
            if statement["Sid"] not in ("CheckOwnPermissions", "ServiceLinkedRoles", "AppRecords", "HostedZones",
                                        "CertificateAndAlarmTopic", "PromoteKeyPolicy", "PromoteTargetGrantKey"):
                assert resource == "*" or "nodeapp" in resource, (kind, statement["Sid"], resource)
            if statement["Sid"] in ("PromoteAssumeProdRole", "PromoteTargetGrantKey"):  # the other account's
                assert resource in ("arn:aws:iam::444455556666:role/deploy-nodeapp-promote",
                                    "arn:aws:kms:eu-west-1:444455556666:key/*"), resource
                continue
            assert "111122223333" in resource or resource == "*" or ":route53:::" in resource


def test_pass_role_only_for_the_apps_role_to_ec2() -> None:
    passing = [s for _, s in _statements() if "iam:PassRole" in _actions(s)]
    assert len(passing) == 1
    assert _actions(passing[0]) == ["iam:PassRole"]
    assert passing[0]["Resource"] == "arn:aws:iam::111122223333:role/nodestack/nodeapp-*"
    assert passing[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_the_emulators_copy_keeps_every_action_and_ec2s_scoping_only() -> None:
    for kind in permissions.KINDS:
        document = permissions.render(kind, SCOPE)
        local = permissions.for_emulator(document)
        assert sorted(a for s in local["Statement"] for a in _actions(s)) == sorted(
            a for s in document["Statement"] for a in _actions(s))
        for statement in local["Statement"]:
            if all(a.startswith("ec2:") for a in _actions(statement)):  # the local cloud's EC2 checks scoping
                original = next(s for s in document["Statement"] if s["Sid"] == statement["Sid"])
                assert (statement.get("Resource"), statement.get("Condition")) == (
                    original.get("Resource"), original.get("Condition")), statement["Sid"]
            else:
                assert statement["Resource"] == "*" and "Condition" not in statement, statement["Sid"]
                assert not [a for a in _actions(statement) if a.startswith("ec2:")]


@pytest.mark.parametrize(("field", "value", "named"), [
    ("app", "Node App", "app 'Node App'"), ("account", "1234", "account '1234'"), ("region", "mars", "region 'mars'")])
def test_a_bad_scope_is_refused_naming_it(field: str, value: str, named: str) -> None:
    given = {"app": "nodeapp", "account": "111122223333", "region": "eu-west-1", field: value}
    with pytest.raises(permissions.PolicyError, match=re.escape(named)):
        permissions.Scope(**given)


def test_an_unknown_policy_or_run_is_refused() -> None:
    with pytest.raises(permissions.PolicyError, match="choose one of bake, stack-network, stack, verify"):
        permissions.render("admin", SCOPE)
    with pytest.raises(permissions.PolicyError, match="no run 'deploy'"):
        permissions.needed("deploy", SCOPE)


def test_the_stack_run_needs_the_reads_of_verification() -> None:
    needed = permissions.needed("stack", SCOPE)["Statement"]
    kinds = ("stack-network", "stack", "verify")
    assert needed == [s for kind in kinds for s in permissions.render(kind, SCOPE)["Statement"]]


@pytest.mark.parametrize(("caller", "principal"), [
    ("arn:aws:iam::111122223333:user/ci", "arn:aws:iam::111122223333:user/ci"),
    ("arn:aws:sts::111122223333:assumed-role/deployer/gh-actions-42", "arn:aws:iam::111122223333:role/deployer"),
    ("arn:aws-cn:sts::111122223333:assumed-role/deployer/s", "arn:aws-cn:iam::111122223333:role/deployer"),
    ("arn:aws:iam::111122223333:root", None),
])
def test_a_caller_is_checked_as_its_user_or_role(caller: str, principal: str | None) -> None:
    assert permissions.principal_of(caller) == principal


def _holder(iam: Any, name: str, scope: permissions.Scope, kinds: tuple[str, ...]) -> str:
    """A user holding the policies of kinds rendered for scope, as an administrator attaches them."""
    arn = str(iam.create_user(UserName=name)["User"]["Arn"])
    for kind in kinds:
        policy = iam.create_policy(PolicyName=f"{name}-{kind}",
                                   PolicyDocument=json.dumps(permissions.render(kind, scope)))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=name, PolicyArn=policy)
    return arn


def _decision(iam: Any, principal: str, action: str, resource: str,
              context: dict[str, str] | dict[str, list[str]] | None = None) -> str:
    values = {k: [v] if isinstance(v, str) else v for k, v in (context or {}).items()}
    entries = [{"ContextKeyName": k, "ContextKeyValues": v, "ContextKeyType": "stringList" if len(v) > 1 else "string"}
               for k, v in values.items()]
    result = iam.simulate_principal_policy(PolicySourceArn=principal, ActionNames=[action], ResourceArns=[resource],
                                           ContextEntries=entries)["EvaluationResults"][0]
    return str(result["EvalDecision"])


@pytest.mark.usefixtures("moto_in_process")
def test_the_policies_reach_the_apps_resources_and_no_one_elses() -> None:
    fix_simulate_principal_policy.apply()
    iam = boto3.client("iam", region_name="eu-west-1")
    deployer = _holder(iam, "deployer", SCOPE, ("stack-network", "stack", "verify"))
    account, region = SCOPE.account, SCOPE.region
    boundary = {"iam:PermissionsBoundary": f"arn:aws:iam::{account}:policy/nodeapp-instance-boundary"}
    to_ec2 = {"iam:PassedToService": "ec2.amazonaws.com"}
    ec2 = f"arn:aws:ec2:{region}:{account}"
    vpcs = f"{ec2}:vpc/*"
    # the names the naming map gives the prod stack of nodeapp, and another app's
    cases = [
        ("iam:CreateRole", f"arn:aws:iam::{account}:role/nodestack/nodeapp-prod-app", boundary, "allowed"),
        ("iam:CreateRole", f"arn:aws:iam::{account}:role/nodestack/nodeapp-prod-app", None, "implicitDeny"),
        ("iam:PutRolePolicy", f"arn:aws:iam::{account}:role/nodestack/otherapp-prod-app", boundary, "implicitDeny"),
        ("iam:PassRole", f"arn:aws:iam::{account}:role/nodestack/nodeapp-prod-app", to_ec2, "allowed"),
        ("iam:PassRole", f"arn:aws:iam::{account}:role/nodestack/nodeapp-prod-app",
         {"iam:PassedToService": "lambda.amazonaws.com"}, "implicitDeny"),
        # a role of the app's name outside the project's path: an administrator's, not the stack's
        ("iam:PassRole", f"arn:aws:iam::{account}:role/nodeapp-admin", to_ec2, "implicitDeny"),
        ("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{account}:role/nodeapp-admin", None, "implicitDeny"),
        ("iam:PassRole", f"arn:aws:iam::{account}:role/admin", to_ec2, "implicitDeny"),
        ("cloudwatch:PutMetricAlarm", f"arn:aws:cloudwatch:{region}:{account}:alarm:nodeapp-prod-cpu-high", None,
         "allowed"),
        ("cloudwatch:DeleteAlarms", f"arn:aws:cloudwatch:{region}:{account}:alarm:otherapp-prod-cpu-high", None,
         "implicitDeny"),
        ("elasticloadbalancing:DeleteLoadBalancer",
         f"arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/app/nodeapp-prod-blue/50dc6c495c0c9188", None,
         "allowed"),
        ("autoscaling:DeleteAutoScalingGroup",
         f"arn:aws:autoscaling:{region}:{account}:autoScalingGroup:1a2b:autoScalingGroupName/otherapp-prod", None,
         "implicitDeny"),
        ("ssm:PutParameter", f"arn:aws:ssm:{region}:{account}:parameter/nodeapp/prod/config/PORT", None, "allowed"),
        ("ssm:PutParameter", f"arn:aws:ssm:{region}:{account}:parameter/nodeapp/prod/ami/latest", None,
         "implicitDeny"),  # the bake's to set
        ("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z0123",
         {"route53:ChangeResourceRecordSetsRecordTypes": "A"}, "allowed"),
        ("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z0123",
         {"route53:ChangeResourceRecordSetsRecordTypes": "MX"}, "implicitDeny"),
        ("ssm:PutParameter", f"arn:aws:ssm:{region}:{account}:parameter/otherapp/prod/config/PORT", None,
         "implicitDeny"),
        # EC2: created with the app's tag, changed only when the resource carries it
        ("ec2:CreateVpc", vpcs, {"aws:RequestTag/App": "nodeapp"}, "allowed"),
        ("ec2:CreateVpc", vpcs, {"aws:RequestTag/App": "otherapp"}, "implicitDeny"),
        ("ec2:CreateVpc", vpcs, None, "implicitDeny"),
        ("ec2:DeleteVpc", f"{ec2}:vpc/vpc-1", {"ec2:ResourceTag/App": "nodeapp"}, "allowed"),
        ("ec2:DeleteVpc", f"{ec2}:vpc/vpc-1", {"ec2:ResourceTag/App": "otherapp"}, "implicitDeny"),
        ("ec2:DeleteVpc", f"{ec2}:vpc/vpc-1", None, "implicitDeny"),  # nobody's
        # a subnet tagged for the app in another app's VPC: the VPC is checked as it is
        ("ec2:CreateSubnet", f"{ec2}:subnet/*", {"aws:RequestTag/App": "nodeapp"}, "allowed"),
        ("ec2:CreateSubnet", f"{ec2}:vpc/vpc-1", {"aws:RequestTag/App": "nodeapp", "ec2:ResourceTag/App": "otherapp"},
         "implicitDeny"),
        ("ec2:CreateNatGateway", f"{ec2}:subnet/subnet-1",
         {"aws:RequestTag/App": "nodeapp", "ec2:ResourceTag/App": "otherapp"}, "implicitDeny"),
        ("ec2:AuthorizeSecurityGroupIngress", f"{ec2}:security-group/sg-1", {"ec2:ResourceTag/App": "otherapp"},
         "implicitDeny"),
        ("ec2:CreateTags", f"{ec2}:security-group/sg-1", {"ec2:ResourceTag/App": "nodeapp", "aws:TagKeys": "Name"},
         "allowed"),
        ("ec2:CreateTags", f"{ec2}:security-group/sg-1", {"ec2:ResourceTag/App": "otherapp", "aws:TagKeys": "App"},
         "implicitDeny"),  # claiming another app's group
        ("ec2:DeleteTags", f"{ec2}:security-group/sg-1", {"ec2:ResourceTag/App": "nodeapp", "aws:TagKeys": "App"},
         "implicitDeny"),  # its App tag stays
        ("ec2:DeleteTags", f"{ec2}:security-group/sg-1", {"ec2:ResourceTag/App": "nodeapp"},
         "implicitDeny"),  # naming no key: every tag would go
        ("ec2:RunInstances", f"{ec2}:subnet/subnet-1",
         {"ec2:ResourceTag/App": "otherapp", "ec2:LaunchTemplate": f"{ec2}:launch-template/lt-1"}, "implicitDeny"),
        ("ec2:RunInstances", f"{ec2}:subnet/subnet-1",
         {"ec2:ResourceTag/App": "nodeapp", "ec2:LaunchTemplate": f"{ec2}:launch-template/lt-1"}, "allowed"),
        ("ec2:CreateTags", f"{ec2}:instance/*", {"ec2:CreateAction": "RunInstances", "aws:RequestTag/App": "nodeapp"},
         "allowed"),  # a group's launch, tagged as its template says
        ("ec2:CreateTags", f"{ec2}:instance/*", {"ec2:CreateAction": "RunInstances", "aws:RequestTag/App": "otherapp"},
         "implicitDeny"),
        ("ec2:CreateTags", f"{ec2}:vpc/*", {"ec2:CreateAction": "CreateVpc"}, "allowed"),
        ("ec2:RunInstances", f"{ec2}:instance/*", {"ec2:LaunchTemplate": f"{ec2}:launch-template/lt-1"}, "allowed"),
        ("ec2:RunInstances", f"{ec2}:instance/*", None, "implicitDeny"),  # only from a launch template
        ("ec2:RunInstances", f"{ec2}:launch-template/lt-1", {"ec2:ResourceTag/App": "otherapp"}, "implicitDeny"),
        ("ec2:CreateVpc", f"arn:aws:ec2:us-east-1:{account}:vpc/*", {"aws:RequestTag/App": "nodeapp"},
         "implicitDeny"),  # another region
        ("iam:CreateUser", f"arn:aws:iam::{account}:user/intruder", None, "implicitDeny"),
    ]
    got = [(action, resource, _decision(iam, deployer, action, resource, context))
           for action, resource, context, _ in cases]
    assert got == [(action, resource, want) for action, resource, _, want in cases]


@pytest.mark.usefixtures("moto_in_process")
def test_the_check_names_what_a_caller_lacks() -> None:
    fix_simulate_principal_policy.apply()
    iam, sts = boto3.client("iam", region_name="eu-west-1"), boto3.client("sts", region_name="eu-west-1")
    account = sts.get_caller_identity()["Account"]
    scope = permissions.Scope("nodeapp", account, "eu-west-1")
    with pytest.raises(permissions.PolicyError, match="nodeapp-instance-boundary does not exist: .* `nodestack policy "
                                                      "instance-boundary --app nodeapp"):
        permissions.check(sts, iam, "stack", "nodeapp", "eu-west-1", local=True)
    iam.create_policy(PolicyName="nodeapp-instance-boundary",
                      PolicyDocument=json.dumps(permissions.render("instance-boundary", scope)))
    whole = _holder(iam, "whole", scope, ("stack-network", "stack", "verify"))
    other = _holder(iam, "other", permissions.Scope("otherapp", account, "eu-west-1"),
                    ("stack-network", "stack", "verify"))
    holds = permissions.missing(iam, whole, permissions.needed("stack", scope), "eu-west-1")
    lacks = permissions.missing(iam, other, permissions.needed("stack", scope), "eu-west-1")
    assert holds == []
    # moto's caller is no IAM user of the account: on the local cloud nothing to simulate, and the
    # run says so; on AWS a caller that cannot be simulated stops the run
    assert permissions.check(sts, iam, "stack", "nodeapp", "eu-west-1", local=True)[1].unchecked.endswith(
        "is not an IAM user or role of the account")
    with pytest.raises(permissions.PolicyError, match=r"cannot check the permissions of arn:aws:sts::\d+:user/moto"):
        permissions.check(sts, iam, "stack", "nodeapp", "eu-west-1", local=False)
    assert {d.statement for d in lacks} == {"InstanceRoleWithBoundary", "InstanceRole", "PassInstanceRoleToEc2",
                                             "LoadBalancers", "AutoScaling", "Alarms", "AppConfiguration", "StackLock",
                                             "StackConvergedRecord",
                                             "AppLogGroup", "AppLogGroupTags",
                                             "InstanceRoleReads", "AppParameters", "CreateTagged",
                                             "CreateTaggedInAppVpc", "CreateTaggedInAppSubnets", "AppNetwork",
                                             "RetagAppNetwork", "LaunchAppTemplates", "LaunchIntoAppNetwork",
                                             "TagAtLaunch"}
    assert permissions.Denied("iam:PassRole", f"arn:aws:iam::{account}:role/nodestack/nodeapp-*", "implicitDeny",
                              "PassInstanceRoleToEc2") in lacks


@pytest.mark.usefixtures("moto_in_process")
def test_the_bake_touches_its_apps_build_resources_only() -> None:
    fix_simulate_principal_policy.apply()
    iam = boto3.client("iam", region_name="eu-west-1")
    baker = _holder(iam, "baker", SCOPE, ("bake",))
    ec2, image = f"arn:aws:ec2:{SCOPE.region}:{SCOPE.account}", f"arn:aws:ec2:{SCOPE.region}::image/ami-1"
    ours, theirs = {"ec2:ResourceTag/App": "nodeapp"}, {"ec2:ResourceTag/App": "otherapp"}
    built = {**ours, "ec2:ResourceTag/BakeRun": "nodestack-bake-dev-20261205112556-22c81a"}  # the bake's own
    cases = [
        ("ec2:RunInstances", f"{ec2}:instance/*", {"aws:RequestTag/App": "nodeapp"}, "allowed"),
        ("ec2:RunInstances", f"{ec2}:volume/*", {"aws:RequestTag/App": "otherapp"}, "implicitDeny"),
        ("ec2:RunInstances", f"{ec2}:instance/*", None, "implicitDeny"),
        ("ec2:RunInstances", image, {"aws:RequestedRegion": SCOPE.region}, "allowed"),  # the source image
        ("ec2:TerminateInstances", f"{ec2}:instance/i-1", built, "allowed"),
        ("ec2:TerminateInstances", f"{ec2}:instance/i-1", ours, "implicitDeny"),  # the stack's instance
        ("ec2:TerminateInstances", f"{ec2}:instance/i-1", theirs, "implicitDeny"),
        ("ec2:TerminateInstances", f"{ec2}:instance/i-1", None, "implicitDeny"),
        ("ec2:ImportKeyPair", f"{ec2}:key-pair/*", {"aws:RequestTag/App": "nodeapp"}, "allowed"),
        ("ec2:ImportKeyPair", f"{ec2}:key-pair/*", None, "implicitDeny"),
        ("ec2:DeleteKeyPair", f"{ec2}:key-pair/k", theirs, "implicitDeny"),
        ("ec2:RunInstances", f"{ec2}:key-pair/k", built, "allowed"),
        ("ec2:RunInstances", f"{ec2}:key-pair/k", ours, "implicitDeny"),
        ("ec2:RunInstances", f"{ec2}:key-pair/k", theirs, "implicitDeny"),
        # the image and snapshot Packer 1.6.6 makes untagged are claimed for the app; another app's are not
        ("ec2:CreateTags", image, {"aws:RequestTag/App": "nodeapp"}, "allowed"),
        ("ec2:CreateTags", image, {"aws:RequestTag/App": "nodeapp", **theirs}, "implicitDeny"),
        ("ec2:CreateTags", image, {**ours, "aws:TagKeys": "validated"}, "allowed"),
        ("ec2:CreateImage", f"{ec2}:instance/i-1", theirs, "implicitDeny"),
        ("ec2:CreateImage", f"{ec2}:instance/i-1", built, "allowed"),
        ("ec2:DeregisterImage", image, theirs, "implicitDeny"),
        ("ec2:DeleteSnapshot", f"arn:aws:ec2:{SCOPE.region}::snapshot/snap-1", ours, "allowed"),
        ("ec2:ModifyImageAttribute", image, ours, "allowed"),  # ImdsSupport, description
        ("ec2:ModifyImageAttribute", image, {**ours, "ec2:Add/group": "all"}, "implicitDeny"),  # public
        ("ec2:ModifyImageAttribute", image, {**ours, "ec2:Add/userId": "999988887777"}, "implicitDeny"),
        ("ec2:RunInstances", f"{ec2}:security-group/sg-1", theirs, "implicitDeny"),
        ("ec2:RunInstances", f"{ec2}:security-group/sg-1", None, "implicitDeny"),  # only into its own group
        ("ec2:RunInstances", f"{ec2}:security-group/sg-1", built, "allowed"),
        ("ec2:RunInstances", f"{ec2}:security-group/sg-1", ours, "implicitDeny"),  # the stack's group
        ("ec2:RunInstances", f"{ec2}:subnet/subnet-1", None, "allowed"),  # the account's own VPC
        # the build's group: created tagged for the app in a VPC of the account's or the app's,
        # opened and deleted while it carries the app's tag and a run's (never the stack's groups);
        # an untagged group is never created, opened, claimed or deleted
        ("ec2:CreateSecurityGroup", f"{ec2}:security-group/*", {"aws:RequestTag/App": "nodeapp"}, "allowed"),
        ("ec2:CreateSecurityGroup", f"{ec2}:security-group/*", None, "implicitDeny"),
        ("ec2:CreateSecurityGroup", f"{ec2}:security-group/*", {"aws:RequestTag/App": "otherapp"}, "implicitDeny"),
        ("ec2:CreateSecurityGroup", f"{ec2}:vpc/vpc-1", None, "allowed"),
        ("ec2:CreateSecurityGroup", f"{ec2}:vpc/vpc-1", ours, "allowed"),
        ("ec2:CreateSecurityGroup", f"{ec2}:vpc/vpc-1", theirs, "implicitDeny"),
        ("ec2:CreateTags", f"{ec2}:security-group/*",
         {"ec2:CreateAction": "CreateSecurityGroup", "aws:RequestTag/App": "nodeapp"}, "allowed"),
        ("ec2:AuthorizeSecurityGroupIngress", f"{ec2}:security-group/sg-1", built, "allowed"),
        ("ec2:AuthorizeSecurityGroupIngress", f"{ec2}:security-group/sg-1", ours, "implicitDeny"),
        ("ec2:AuthorizeSecurityGroupIngress", f"{ec2}:security-group/sg-1", None, "implicitDeny"),
        ("ec2:AuthorizeSecurityGroupIngress", f"{ec2}:security-group/sg-1", theirs, "implicitDeny"),
        ("ec2:CreateTags", f"{ec2}:security-group/sg-1", {"aws:RequestTag/App": "nodeapp"}, "implicitDeny"),
        ("ec2:CreateTags", f"{ec2}:security-group/sg-1", {"aws:RequestTag/App": "nodeapp", "aws:TagKeys": "App"},
         "implicitDeny"),
        ("ec2:CreateTags", f"{ec2}:security-group/sg-1", {**ours, "aws:TagKeys": "Name"}, "implicitDeny"),
        ("ec2:CreateTags", f"{ec2}:security-group/sg-1", {**ours, "aws:TagKeys": "BakeRun"}, "implicitDeny"),
        ("ec2:CreateTags", image, {**ours, "aws:TagKeys": "App"}, "implicitDeny"),
        ("ec2:DeleteSecurityGroup", f"{ec2}:security-group/sg-1", None, "implicitDeny"),
        ("ec2:DeleteSecurityGroup", f"{ec2}:security-group/sg-1", built, "allowed"),
        ("ec2:DeleteSecurityGroup", f"{ec2}:security-group/sg-1", ours, "implicitDeny"),
    ]
    got = [(action, resource, _decision(iam, baker, action, resource, context))
           for action, resource, context, _ in cases]
    assert got == [(action, resource, want) for action, resource, _, want in cases]


# Each lock is its holder's alone: the bake's policy reaches no stack lock, no other app's lock and no
# configuration; the stack's reaches neither the bake's lock nor another app's.
@pytest.mark.parametrize(("kind", "actions", "own", "others"), [
    ("bake", ("ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"),
     names.bake_lock_parameter("nodeapp", "dev"),
     (names.bake_lock_parameter("otherapp", "dev"), "/nodeapp/dev/lock/stack", "/nodeapp/dev/config/PORT")),
    ("stack", ("ssm:PutParameter", "ssm:DeleteParameter"), names.stack_lock_parameter("nodeapp", "prod"),
     (names.bake_lock_parameter("nodeapp", "prod"), names.stack_lock_parameter("otherapp", "prod"))),
])
@pytest.mark.usefixtures("moto_in_process")
def test_each_may_use_its_own_lock_only(kind: str, actions: tuple[str, ...], own: str, others: tuple[str, ...]) -> None:
    fix_simulate_principal_policy.apply()
    iam = boto3.client("iam", region_name="eu-west-1")
    holder = _holder(iam, kind, SCOPE, (kind,))
    prefix = f"arn:aws:ssm:{SCOPE.region}:{SCOPE.account}:parameter"
    for action in actions:
        assert _decision(iam, holder, action, prefix + own) == "allowed", action
    for resource in others:
        assert _decision(iam, holder, "ssm:DeleteParameter", prefix + resource) == "implicitDeny", resource


@pytest.mark.usefixtures("moto_in_process")
def test_promote_shares_with_the_prod_account_alone_and_records_only_its_own_tags() -> None:
    fix_simulate_principal_policy.apply()
    iam = boto3.client("iam", region_name="eu-west-1")
    prod, other = SCOPE.other_account, "999988887777"
    build = _holder(iam, "promoter", SCOPE, ("promote",))
    alone = _holder(iam, "promoter-one-account", permissions.Scope("nodeapp", SCOPE.account, SCOPE.region),
                    ("promote",))
    image, app = "arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0", {"aws:ResourceTag/App": ["nodeapp"]}
    snapshot = "arn:aws:ec2:eu-west-1::snapshot/snap-0123456789abcdef0"
    cases = [
        (build, "ec2:ModifyImageAttribute", image, {**app, "ec2:Add/userId": [prod]}, "allowed"),
        (build, "ec2:ModifyImageAttribute", image, {**app, "ec2:Remove/userId": [prod]}, "allowed"),  # the undo
        (build, "ec2:ModifyImageAttribute", image, {**app, "ec2:Add/userId": [other]}, "implicitDeny"),
        (build, "ec2:ModifyImageAttribute", image, {**app, "ec2:Add/group": ["all"]}, "implicitDeny"),  # public
        (build, "ec2:ModifyImageAttribute", image, {**app, "ec2:Add/userId": [prod], "ec2:Add/group": ["all"]},
         "implicitDeny"),
        (build, "ec2:ModifyImageAttribute", image, {"aws:ResourceTag/App": ["shop"], "ec2:Add/userId": [prod]},
         "implicitDeny"),
        (build, "ec2:ModifySnapshotAttribute", snapshot, {"ec2:Add/group": ["all"]}, "implicitDeny"),
        (build, "ec2:ModifySnapshotAttribute", snapshot, {"ec2:Add/userId": [prod]}, "implicitDeny"),
        (build, "ec2:CreateTags", image, {**app, "aws:TagKeys": ["PromotedBy", "PromotedAt", "PromotedTo"]},
         "allowed"),
        (build, "ec2:CreateTags", image, {**app, "aws:TagKeys": ["PromotedBy", "validated"]}, "implicitDeny"),
        (build, "ec2:CreateTags", image, {**app, "aws:TagKeys": ["AppRevision"]}, "implicitDeny"),
        (build, "sts:AssumeRole", f"arn:aws:iam::{prod}:role/deploy-nodeapp-promote", {}, "allowed"),
        (build, "sts:AssumeRole", f"arn:aws:iam::{other}:role/deploy-nodeapp-promote", {}, "implicitDeny"),
        (alone, "ec2:ModifyImageAttribute", image, {**app, "ec2:Add/userId": [prod]}, "implicitDeny"),
    ]
    got = [_decision(iam, who, action, resource, context) for who, action, resource, context, _ in cases]
    assert got == [want for *_, want in cases]


@pytest.mark.usefixtures("moto_in_process")
def test_the_prod_accounts_promote_role_tags_grants_and_sets_its_parameter_only() -> None:
    fix_simulate_principal_policy.apply()
    iam = boto3.client("iam", region_name="eu-west-1")
    build, prod, other = SCOPE.account, SCOPE.other_account, "999988887777"
    target = _holder(iam, "promote-target", permissions.Scope("nodeapp", prod, SCOPE.region, other_account=build),
                     ("promote-target",))
    image = "arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0"
    role = f"arn:aws:iam::{prod}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    key = f"arn:aws:kms:eu-west-1:{build}:key/1a2b3c4d-5678-90ab-cdef-1234567890ab"
    grant = {"kms:GranteePrincipal": [role], "kms:GrantOperations": ["Decrypt", "CreateGrant"]}
    cases = [
        ("ec2:CreateTags", image, {"ec2:Owner": [build], "aws:TagKeys": ["validated", "AppRevision"]}, "allowed"),
        ("ec2:CreateTags", image, {"ec2:Owner": [other], "aws:TagKeys": ["validated"]}, "implicitDeny"),
        ("ec2:CreateTags", image, {"ec2:Owner": [build], "aws:TagKeys": ["validated", "App"]}, "implicitDeny"),
        ("kms:CreateGrant", key, grant, "allowed"),
        ("kms:CreateGrant", key, {**grant, "kms:GranteePrincipal": [f"arn:aws:iam::{prod}:role/admin"]},
         "implicitDeny"),
        ("kms:CreateGrant", key, {**grant, "kms:GrantOperations": ["Decrypt", "RetireGrant"]}, "implicitDeny"),
        ("kms:CreateGrant", f"arn:aws:kms:eu-west-1:{other}:key/1a2b", grant, "implicitDeny"),
        ("ssm:PutParameter", f"arn:aws:ssm:eu-west-1:{prod}:parameter/nodeapp/prod/ami/latest", {}, "allowed"),
        ("ssm:PutParameter", f"arn:aws:ssm:eu-west-1:{prod}:parameter/nodeapp/prod/config/PORT", {}, "implicitDeny"),
        ("ec2:ModifyImageAttribute", image, {"ec2:Add/group": ["all"]}, "implicitDeny"),
        ("ec2:ModifySnapshotAttribute", "arn:aws:ec2:eu-west-1::snapshot/snap-0123", {}, "implicitDeny"),
    ]
    got = [_decision(iam, target, action, resource, context) for action, resource, context, _ in cases]
    assert got == [want for *_, want in cases]


def test_the_prod_accounts_policy_needs_the_build_account() -> None:
    with pytest.raises(permissions.PolicyError, match="--other-account"):
        permissions.render("promote-target", permissions.Scope("nodeapp", "444455556666", "eu-west-1"))
