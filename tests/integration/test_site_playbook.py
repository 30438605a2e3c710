"""site.yml on the local cloud: runs, is idempotent, and bad input is named before any change."""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nodestack.local_cloud import request_log, server
from nodestack.paths import free_port
from nodestack.stack_state import LAYERS
from tests.conftest import BIN, LOCAL_SETTINGS, REPO, client, make_image


def playbook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=REPO, env={**env, "ANSIBLE_FORCE_COLOR": "0"},
                          capture_output=True, text=True, timeout=300, check=False)


def recap(output: str) -> dict[str, int]:
    match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups()), strict=True))


def routes_out(ec2: Any, vpc_id: str) -> dict[str, tuple[str, str | None]]:
    """Each named route table: (its subnets, the target of its 0.0.0.0/0 route or None)."""
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    out = {}
    for table in tables:
        name = next((t["Value"] for t in table.get("Tags", []) if t["Key"] == "Name"), "main")
        default = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        subnets = ",".join(sorted(a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")))
        out[name] = (subnets, (default[0].get("NatGatewayId") or default[0].get("GatewayId")) if default else None)
    return out


def nat_gateways(ec2: Any, vpc_id: str) -> dict[str, str]:
    """The VPC's live NAT gateways: id -> zone of its subnet."""
    found = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                               {"Name": "state", "Values": ["pending", "available"]}])["NatGateways"]
    return {n["NatGatewayId"]: ec2.describe_subnets(SubnetIds=[n["SubnetId"]])["Subnets"][0]["AvailabilityZone"]
            for n in found}


def subnet_ids(ec2: Any, cidr: str) -> str:
    filters = [{"Name": "cidr-block", "Values": [cidr]}, {"Name": "tag:Project", "Values": ["nodestack"]}]
    return ",".join(s["SubnetId"] for s in ec2.describe_subnets(Filters=filters)["Subnets"])


@dataclass(frozen=True)
class SiteRuns:
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]  # every layer applied again (stack_converged_hours=0)
    third: subprocess.CompletedProcess[str]  # the converged layers skipped
    first_calls: Counter[str]
    third_calls: Counter[str]


APP_SECRET = secrets.token_hex(16)


@pytest.fixture(scope="module")
def site(aws_env: dict[str, str], local_cloud: server.Endpoint, promoted_ami: str,
         tmp_path_factory: pytest.TempPathFactory) -> SiteRuns:
    """site.yml run twice on the module's stack (with the app's configuration, a secret
    included, as a Vault file would give it); the tests below read what it built."""
    config = tmp_path_factory.mktemp("app-config") / "vars.json"
    config.write_text(json.dumps({"stack_app_config": {"GREETING": "hello", "WORKERS": 2},
                                  "stack_app_secrets": {"API_KEY": APP_SECRET}}))
    log = local_cloud.request_log
    before = request_log.log_size(log)
    first = playbook(aws_env, "site.yml", "-e", f"@{config}")
    assert first.returncode == 0, first.stdout[-3000:]
    calls = request_log.count_calls(log, before)[1]
    second = playbook(aws_env, "site.yml", "-e", f"@{config}", "-e", "stack_converged_hours=0")
    assert second.returncode == 0, second.stdout[-3000:]
    before = request_log.log_size(log)
    third = playbook(aws_env, "site.yml", "-e", f"@{config}")
    assert third.returncode == 0, third.stdout[-3000:]
    return SiteRuns(first, second, third, calls, request_log.count_calls(log, before)[1])


def test_site_runs_twice_with_nothing_changed_the_second_time(site: SiteRuns, local_cloud: server.Endpoint,
                                                             promoted_ami: str) -> None:
    assert recap(site.second.stdout)["changed"] == 0
    assert "skipping is off (stack_converged_hours: 0)" in site.second.stdout
    for layer in LAYERS:  # each applied, and found as the first run left it
        assert f"TASK [stack_{layer} : " in site.second.stdout, layer
    # Mitogen's strategy notice is silenced where it is understood (plugins/strategy); others still show
    assert "strategy plugins not included in ansible.builtin" not in site.first.stdout + site.first.stderr
    assert f"via {local_cloud.url}; AMI {promoted_ami}" in site.second.stdout


# What the layers check before any change (each layer's tasks/checks.yml runs these tasks of the stack role)
OFFERINGS_CHECKS = ("TASK [stack : Check the zones are zones of the region]",
                    "TASK [stack : Check the instance type is offered in every zone]")
LB_CHECKS = ("TASK [stack : Check the load balancer settings]",)
LAYER_CHECKS = {"network": OFFERINGS_CHECKS, "compute": OFFERINGS_CHECKS, "load_balancer": LB_CHECKS}
LOCK_TAKEN = "TASK [stack : Take the stack's run lock]"


def test_site_runs_each_check_once_before_the_lock(site: SiteRuns) -> None:
    for run in (site.first.stdout, site.second.stdout, site.third.stdout):
        for task in (*OFFERINGS_CHECKS, *LB_CHECKS):
            assert run.count(task) == 1, task
            assert run.index(task) < run.index(LOCK_TAKEN), task


def test_a_converged_stack_is_read_once_skipped_and_verified(site: SiteRuns) -> None:
    third = site.third.stdout
    assert recap(third)["changed"] == 0
    assert f"Converged, skipped: {', '.join(LAYERS)}." in third
    assert "TASK [stack_" not in third, "a converged layer was applied"
    assert re.search(r"nodeapp-local verified: \d+ passed", third), third[-3000:]
    # the layers' modules describe each resource again (about 150 calls); the batched read once, and
    # verify answers from its responses: each read call at most twice (preflight's and the read's)
    assert site.third_calls["ec2:DescribeSecurityGroups"] == 1, site.third_calls
    assert site.third_calls["autoscaling:DescribePolicies"] == 1, site.third_calls
    # (the app's configuration, three SSM parameters of the fixture, is app_config.yml's: not a layer)
    assert max(n for call, n in site.third_calls.items() if not call.startswith("ssm:")) <= 2, site.third_calls
    assert sum(site.third_calls.values()) < sum(site.first_calls.values()) / 3, site.third_calls


@pytest.mark.usefixtures("site")
def test_drift_applies_the_layer_it_is_in_and_those_after(aws_env: dict[str, str],
                                                          local_cloud: server.Endpoint) -> None:
    ec2 = client(local_cloud.url, "ec2")
    groups = {g["GroupName"]: g for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:App", "Values": ["nodeapp"]}])["SecurityGroups"]}
    lb, app = groups["nodeapp-local-lb"], groups["nodeapp-local-app"]
    ec2.revoke_security_group_ingress(GroupId=app["GroupId"], IpPermissions=app["IpPermissions"])  # as by hand

    repaired = playbook(aws_env, "site.yml")
    assert repaired.returncode == 0, repaired.stdout[-3000:]
    assert ("Converged, skipped: iam, logs, network. Applying security_groups, load_balancer, compute, dns: "
            "security_groups: its resources changed since the last converging run") in repaired.stdout
    assert recap(repaired.stdout)["changed"] >= 1
    app = ec2.describe_security_groups(GroupIds=[app["GroupId"]])["SecurityGroups"][0]
    assert [(p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]]) for p in app["IpPermissions"]] == [
        (3000, [lb["GroupId"]])]

    # what a run changed is skipped only once a later run finds it as it left it
    again = playbook(aws_env, "site.yml")
    assert ("Applying security_groups, load_balancer, compute, dns: security_groups: the last run changed it"
            in again.stdout) and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    settled = playbook(aws_env, "site.yml")
    assert f"Converged, skipped: {', '.join(LAYERS)}." in settled.stdout and recap(settled.stdout)["changed"] == 0


@pytest.mark.usefixtures("site")
def test_a_changed_setting_applies_every_layer_and_check_mode_records_nothing(aws_env: dict[str, str],
                                                                             local_cloud: server.Endpoint) -> None:
    ssm = client(local_cloud.url, "ssm")
    recorded = ssm.get_parameter(Name="/nodeapp/local/state/nodeapp-local")["Parameter"]["Version"]
    preview = playbook(aws_env, "site.yml", "--check", "--diff", "-e", "stack_log_retention_days=14")
    assert preview.returncode == 0, preview.stdout[-3000:]
    assert "Applying iam, logs, network, security_groups, load_balancer, compute, dns: the settings" in preview.stdout
    assert recap(preview.stdout)["changed"] == 1, preview.stdout[-3000:]  # the log group's retention
    assert "/nodeapp/local: retention 30 -> 14 days" in preview.stdout
    # amazon.aws's log group module sets the retention in check mode too: the layer leaves it out there
    group = client(local_cloud.url, "logs").describe_log_groups(logGroupNamePrefix="/nodeapp/local")["logGroups"]
    assert [g.get("retentionInDays") for g in group] == [30]
    assert ssm.get_parameter(Name="/nodeapp/local/state/nodeapp-local")["Parameter"]["Version"] == recorded


@pytest.mark.parametrize("layer", ["iam", "logs", "network", "security_groups", "load_balancer", "compute", "dns"])
def test_each_layer_runs_alone_and_finds_the_stack_as_site_left_it(site: SiteRuns, aws_env: dict[str, str],
                                                                   layer: str) -> None:
    # alone, a layer looks up by tag and name what site.yml handed it from the layers before
    result = playbook(aws_env, f"playbooks/{layer}.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result.stdout)["changed"] == 0, result.stdout[-3000:]
    assert f"TASK [stack_{layer} : " in result.stdout
    # its own checks (tasks/checks.yml), once, before it takes the lock; no other layer's
    for task in (*OFFERINGS_CHECKS, *LB_CHECKS):
        assert result.stdout.count(task) == (task in LAYER_CHECKS.get(layer, ())), task
    assert result.stdout.count(LOCK_TAKEN) == 1
    assert all(result.stdout.index(task) < result.stdout.index(LOCK_TAKEN) for task in LAYER_CHECKS.get(layer, ()))


def test_the_apps_configuration_is_in_ssm_and_its_secret_in_no_output(site: SiteRuns,
                                                                         local_cloud: server.Endpoint) -> None:
    ssm = client(local_cloud.url, "ssm")
    found = ssm.get_parameters_by_path(Path="/nodeapp/dev/config", WithDecryption=True)["Parameters"]
    assert {p["Name"]: (p["Type"], p["Value"]) for p in found} == {
        "/nodeapp/dev/config/GREETING": ("String", "hello"), "/nodeapp/dev/config/WORKERS": ("String", "2"),
        "/nodeapp/dev/config/API_KEY": ("SecureString", APP_SECRET)}
    assert APP_SECRET not in site.first.stdout + site.first.stderr + site.second.stdout + site.second.stderr


@pytest.mark.usefixtures("site")
def test_network_and_iam_are_as_declared(site: SiteRuns, local_cloud: server.Endpoint) -> None:
    ec2, iam = client(local_cloud.url, "ec2"), client(local_cloud.url, "iam")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Project", "Values": ["nodestack"]},
                                      {"Name": "tag:Environment", "Values": ["local"]}])["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.40.0.0/16"], "one VPC, no duplicates"
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])["Subnets"]
    assert sorted((s["CidrBlock"], s["AvailabilityZone"], s["MapPublicIpOnLaunch"]) for s in subnets) == [
        ("10.40.0.0/24", "us-east-1a", True), ("10.40.1.0/24", "us-east-1b", True),
        ("10.40.10.0/24", "us-east-1a", False), ("10.40.11.0/24", "us-east-1b", False)]
    assert (routes_out(ec2, vpcs[0]["VpcId"])["nodeapp-local-public"][1] or "").startswith("igw-")
    # stack_nat_gateways=single: one NAT gateway, in the first zone, is both zones' way out
    nat = nat_gateways(ec2, vpcs[0]["VpcId"])
    assert list(nat.values()) == ["us-east-1a"]
    private = {name: route for name, route in routes_out(ec2, vpcs[0]["VpcId"]).items() if "-private-" in name}
    assert private == {"nodeapp-local-private-us-east-1a": (subnet_ids(ec2, "10.40.10.0/24"), next(iter(nat))),
                       "nodeapp-local-private-us-east-1b": (subnet_ids(ec2, "10.40.11.0/24"), next(iter(nat)))}
    eips = ec2.describe_addresses(Filters=[{"Name": "tag:Project", "Values": ["nodestack"]}])["Addresses"]
    assert len(eips) == 1 and {"Key": "Name", "Value": "nodeapp-local-nat-us-east-1a"} in eips[0]["Tags"]
    profile = iam.get_instance_profile(InstanceProfileName="nodeapp-local-app")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["nodeapp-local-app"]
    # under the project's IAM path, bounded by the boundary: what the stack's deployer may touch
    assert profile["Path"] == "/nodestack/" and profile["Roles"][0]["Path"] == "/nodestack/"
    role = iam.get_role(RoleName="nodeapp-local-app")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"].endswith(":policy/nodeapp-instance-boundary")
    policy = iam.get_role_policy(RoleName="nodeapp-local-app", PolicyName="nodeapp-local-app-least-privilege")
    resources = [st["Resource"] for st in policy["PolicyDocument"]["Statement"]]
    # the configuration path the (dev) AMI reads, nothing else: not the AMI parameters beside it
    config = "arn:aws:ssm:us-east-1:123456789012:parameter/nodeapp/dev/config"
    for arn, allowed in ((config, True), (f"{config}/DATABASE_URL", True), (f"{config}2/X", False),
                         ("arn:aws:ssm:us-east-1:123456789012:parameter/nodeapp/dev/ami/latest", False),
                         ("arn:aws:ssm:us-east-1:123456789012:parameter/nodeapp/local/config/X", False)):
        assert any(fnmatch.fnmatchcase(arn, r) for r in resources[0]) == allowed, arn
    log_groups = resources[1] if isinstance(resources[1], list) else [resources[1]]
    own = "arn:aws:logs:us-east-1:123456789012:log-group:/nodeapp/local"
    for arn in (own, f"{own}:log-stream:i-1", f"{own}/app"):
        assert any(fnmatch.fnmatchcase(arn, r) for r in log_groups), arn
    statements = {st["Sid"]: st for st in policy["PolicyDocument"]["Statement"]}
    assert "logs:CreateLogGroup" not in statements["WriteOwnLogs"]["Action"]  # the stack makes it (stack_logs)
    # stack_session_manager: the SSM agent registers and opens Session Manager's channels, nothing more
    assert sorted(statements["SessionManager"]["Action"]) == [
        "ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]
    logs = client(local_cloud.url, "logs")
    group = logs.describe_log_groups(logGroupNamePrefix="/nodeapp/local")["logGroups"]
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in group] == [("/nodeapp/local", 30)]
    assert logs.list_tags_log_group(logGroupName="/nodeapp/local")["tags"] == {
        "Project": "nodestack", "App": "nodeapp", "Environment": "local"}
    # IAM's * spans any characters: another environment's prefix (/nodeapp/local2) must not match
    for other in ("/nodeapp/local2", "/nodeapp/local-old:log-stream:x", "/nodeapp/localhost/app"):
        arn = own.replace("/nodeapp/local", other)
        assert not any(fnmatch.fnmatchcase(arn, r) for r in log_groups), arn


@pytest.mark.usefixtures("site")
def test_security_group_ingress_is_exactly_as_declared(site: SiteRuns, local_cloud: server.Endpoint) -> None:
    groups = client(local_cloud.url, "ec2").describe_security_groups(
        Filters=[{"Name": "tag:Project", "Values": ["nodestack"]}, {"Name": "tag:Environment", "Values": ["local"]}])
    by_name = {g["GroupName"]: g for g in groups["SecurityGroups"]}
    assert set(by_name) == {"nodeapp-local-lb", "nodeapp-local-app"}, "no bastion unless enabled"

    def ingress(name: str) -> set[tuple[int, str]]:
        return {(p["FromPort"], source) for p in by_name[name]["IpPermissions"]
                for source in [r["CidrIp"] for r in p["IpRanges"]] + [u["GroupId"] for u in p["UserIdGroupPairs"]]}
    assert ingress("nodeapp-local-lb") == {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")}
    assert ingress("nodeapp-local-app") == {(3000, by_name["nodeapp-local-lb"]["GroupId"])}


@pytest.mark.usefixtures("site")
def test_security_group_egress_is_only_what_each_needs(site: SiteRuns, local_cloud: server.Endpoint) -> None:
    groups = client(local_cloud.url, "ec2").describe_security_groups(
        Filters=[{"Name": "tag:Project", "Values": ["nodestack"]}, {"Name": "tag:Environment", "Values": ["local"]}])
    by_name = {g["GroupName"]: g for g in groups["SecurityGroups"]}

    def egress(name: str) -> set[tuple[str, int, int, str]]:
        return {(p["IpProtocol"], p.get("FromPort", -1), p.get("ToPort", -1), source)
                for p in by_name[name]["IpPermissionsEgress"]
                for source in [r["CidrIp"] for r in p["IpRanges"]] + [u["GroupId"] for u in p["UserIdGroupPairs"]]}
    # AWS's default egress (all traffic to 0.0.0.0/0) is gone from both
    assert egress("nodeapp-local-lb") == {("tcp", 3000, 3000, by_name["nodeapp-local-app"]["GroupId"])}
    assert egress("nodeapp-local-app") == {("tcp", port, port, "0.0.0.0/0") for port in (22, 80, 443)}


@pytest.mark.usefixtures("site")
def test_load_balancer_checks_the_app_health(site: SiteRuns, local_cloud: server.Endpoint) -> None:
    elb, ec2 = client(local_cloud.url, "elbv2"), client(local_cloud.url, "ec2")
    balancers = [b for b in elb.describe_load_balancers()["LoadBalancers"] if b["LoadBalancerName"] == "nodeapp-local"]
    assert len(balancers) == 1 and balancers[0]["Scheme"] == "internet-facing"
    subnets = ec2.describe_subnets(Filters=[{"Name": "tag:Tier", "Values": ["public"]},
                                            {"Name": "tag:Environment", "Values": ["local"]}])["Subnets"]
    public = {s["SubnetId"] for s in subnets}
    assert {z["SubnetId"] for z in balancers[0]["AvailabilityZones"]} == public
    group = elb.describe_target_groups(Names=["nodeapp-local-app"])["TargetGroups"][0]
    assert (group["Port"], group["HealthCheckPath"], group["HealthCheckPort"]) == (3000, "/health", "3000")
    assert (group["HealthCheckIntervalSeconds"], group["HealthyThresholdCount"], group["UnhealthyThresholdCount"]) == (
        LOCAL_SETTINGS["stack_health_check_interval"], LOCAL_SETTINGS["stack_healthy_threshold"],
        LOCAL_SETTINGS["stack_unhealthy_threshold"])
    listeners = elb.describe_listeners(LoadBalancerArn=balancers[0]["LoadBalancerArn"])["Listeners"]
    assert ([(li["Port"], li["DefaultActions"][0]["TargetGroupArn"]) for li in listeners]
            == [(80, group["TargetGroupArn"])])
    attributes = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(
        LoadBalancerArn=balancers[0]["LoadBalancerArn"])["Attributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["deletion_protection.enabled"] == "false", "on in prod only"


def test_a_record_of_another_stacks_load_balancer_is_refused_before_any_change(
        site: SiteRuns, aws_env: dict[str, str], local_cloud: server.Endpoint) -> None:
    ec2, elb = client(local_cloud.url, "ec2"), client(local_cloud.url, "elbv2")
    route53 = client(local_cloud.url, "route53")
    zone = route53.list_hosted_zones_by_name(DNSName="local.nodeapp.test.")["HostedZones"][0]["Id"]
    public = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[
        {"Name": "tag:Tier", "Values": ["public"]}, {"Name": "tag:Environment", "Values": ["local"]}])["Subnets"]]
    ours = elb.describe_load_balancers(Names=["nodeapp-local"])["LoadBalancers"][0]
    other = elb.create_load_balancer(Name="nodeapp-other", Subnets=public)["LoadBalancers"][0]

    def point_at(balancer: dict[str, Any]) -> None:
        route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
            "Action": "UPSERT", "ResourceRecordSet": {"Name": "app.local.nodeapp.test.", "Type": "A", "AliasTarget": {
                "HostedZoneId": balancer["CanonicalHostedZoneId"], "DNSName": balancer["DNSName"],
                "EvaluateTargetHealth": True}}}]})

    try:
        point_at(other)  # as another environment given the same name and zone would have
        before = request_log.log_size(local_cloud.request_log)
        result = playbook(aws_env, "site.yml")
        assert result.returncode != 0
        assert "points at load balancer nodeapp-other, not at nodeapp-local's" in result.stdout, result.stdout[-3000:]
        writes = {call: n for call, n in request_log.count_calls(local_cloud.request_log, before)[1].items()
                  if re.search(r":(Create|Put|Delete|Modify|Change|Attach|Authorize|Run|POST)", call)}
        # checked under the run lock (no other run changes the record meanwhile): its take and release only
        assert writes == {"ssm:PutParameter": 1, "ssm:DeleteParameter": 1}
        assert client(local_cloud.url, "ssm").get_parameters_by_path(Path="/nodeapp/local/lock")["Parameters"] == []
    finally:
        point_at(ours)
        elb.delete_load_balancer(LoadBalancerArn=other["LoadBalancerArn"])


def test_site_reaches_the_endpoint_it_was_given(site: SiteRuns) -> None:
    assert site.first_calls["sts:GetCallerIdentity"] >= 1


@pytest.fixture(autouse=True)
def _promoted(promoted_ami: str) -> None:
    """Every site run here has a promoted dev AMI to build on."""


@pytest.mark.parametrize(("override", "named"), [
    ("aws_region=moon-1", "aws_region=moon-1 is invalid"),
    ("stack_env=staging", "stack_env=staging is invalid"),
    ("stack_app_name=Bad_Name", "stack_app_name=Bad_Name is invalid"),
    ("aws_endpoint_url=http://aws.example.invalid:5055",
     "aws_endpoint_url=http://aws.example.invalid:5055 is not a loopback URL"),
    ("stack_vpc_cidr=10.40.0.0/33", "stack_vpc_cidr=10.40.0.0/33 is not an IPv4 CIDR block"),
    ('{"stack_public_subnets": ["10.99.0.0/24", "10.40.1.0/24"]}',
     "stack_public_subnets[0]=10.99.0.0/24 is not inside stack_vpc_cidr=10.40.0.0/16"),
    ('{"stack_private_subnets": ["10.40.0.0/25", "10.40.11.0/24"]}',
     "stack_public_subnets[0]=10.40.0.0/24 overlaps stack_private_subnets[0]=10.40.0.0/25"),
    ('{"stack_zones": ["us-east-1a"]}', "stack_zones=['us-east-1a'] is invalid: give at least two different zones"),
    ("stack_asg_min_size=3", "stack_asg_desired_capacity=2 (min 3, max 4) is invalid"),
    ("stack_health_check_port=8080", "stack_health_check_port=8080 is invalid: the load balancer must check the port"),
    ("stack_instance_type=huge", "stack_instance_type=huge is invalid"),
    ("stack_ami_env=staging", "stack_ami_env=staging is invalid"),
    ('{"stack_bastion_enabled": true, "stack_admin_cidr": "0.0.0.0/0"}', "stack_admin_cidr=0.0.0.0/0 is invalid"),
    ('{"stack_bastion_enabled": true, "stack_admin_cidr": "0.0.0.0/1"}', "stack_admin_cidr=0.0.0.0/1 is invalid"),
    ('{"stack_bastion_enabled": true, "stack_admin_cidr": "10.0.0.0/8"}',
     "stack_admin_cidr=10.0.0.0/8 is invalid: with stack_bastion_enabled, give the admins' network as a CIDR "
     "block of at least /16"),
    ("stack_env=prod", "stack_certificate_arn= (stack_env prod) is invalid: prod serves HTTPS"),
    ('{"stack_env": "prod", "stack_https_waived": true}',
     "stack_account_id= (stack_env prod) is invalid: give the 12-digit id of the account"),
    ('{"stack_lb_kind": "classic", "stack_certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b"}',
     "a classic ELB cannot redirect HTTP to HTTPS"),
    ("stack_lb_access_logs_bucket=Bad_Bucket", "stack_lb_access_logs_bucket=Bad_Bucket is invalid"),
    ("stack_health_check_status=600", "stack_health_check_status=600 (load balancer alb) is invalid"),
    ('{"stack_lb_kind": "classic", "stack_health_check_status": 204}',
     "stack_health_check_status=204 (load balancer classic) is invalid: an ALB accepts"),
    ("stack_health_check_interval=1", "stack_health_check_interval=1 is invalid: give 5 to 300 seconds"),
    ("stack_asg_healthy_timeout=5", "stack_asg_healthy_timeout=5 is invalid: give 10 to 3600 seconds"),
    ("stack_cpu_low=80", "stack_cpu_low=80 (high 70) is invalid: keep 1 <= stack_cpu_low < stack_cpu_high"),
    ("stack_dns_weight=300", "stack_dns_weight=300 is invalid: give a Route53 weight from 0 to 255"),
    ("stack_certificate_arn=my-cert", "stack_certificate_arn=my-cert is invalid: give an ACM certificate ARN"),
    ("stack_certificate_arn=arn:aws:acm:eu-west-1:123456789012:certificate/0a1b",
     "stack_certificate_arn=arn:aws:acm:eu-west-1:123456789012:certificate/0a1b is invalid: give an ACM certificate "
     "ARN of the stack's region"),
    ("stack_alarm_topic_arn=arn:aws:sns:eu-west-1:123456789012:alerts",
     "stack_alarm_topic_arn=arn:aws:sns:eu-west-1:123456789012:alerts is invalid: give an SNS topic ARN of the "
     "stack's region (CloudWatch notifies topics of its own region)"),
    ("stack_dns_zone=Example.COM.", "stack_dns_zone=Example.COM. is invalid: give a domain such as example.com"),
    ("stack_rollout_min_healthy_percentage=150", "stack_rollout_min_healthy_percentage=150 is invalid: give 0 to 100"),
    ("stack_launch_kind=spot", "value of stack_launch_kind must be one of: template, configuration, got: spot"),
    ("stack_cpu_high=lots", "argument 'stack_cpu_high' is of type"),  # a layer's spec (roles/stack_compute)
    ("stack_volume_size=2", "stack_volume_size=2 is invalid: give the root volume 8 to 16384 GiB"),
    ("stack_app_port=22", "stack_app_port=22 is invalid: use a TCP port from 1 to 65535 other than 22"),
    ("stack_asg_max_szie=3", "Unknown stack settings: stack_asg_max_szie (did you mean stack_asg_max_size?)"),
    ("stack_frobnicate=1", "Unknown stack settings: stack_frobnicate. Fix the name"),
    ("stack_app_config_path=/nodeapp/dev/config", "stack_app_config_path=/nodeapp/dev/config is invalid"),
    ("stack_app_config_path=/shared/config/", "stack_app_config_path=/shared/config/ is invalid: give an SSM path "
                                              "under /nodeapp/"),
    ('{"stack_app_config": {"database-url": "x"}}', "stack_app_config=['database-url'] (names) is invalid"),
    ('{"stack_app_config": {"API_KEY": "x"}, "stack_app_secrets": {"API_KEY": "s3cret-value"}}',
     "name each value as an environment variable"),
])
def test_bad_input_is_named_and_nothing_is_called(
    aws_env: dict[str, str], local_cloud: server.Endpoint, override: str, named: str
) -> None:
    log = local_cloud.request_log
    before = request_log.log_size(log)
    result = playbook(aws_env, "site.yml", "-e", override)
    assert result.returncode != 0
    assert named in result.stdout
    assert request_log.count_calls(log, before)[0] == 0


BAD_ZONES = '{"stack_zones": ["us-east-1a", "us-east-1z"]}'
ZONES_READ, TYPES_READ = "ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTypeOfferings"
# preflight's reads before the region's offerings: the caller, its permissions and the boundary
CALLER_READS = {"sts:GetCallerIdentity", "iam:ListAccountAliases", "iam:GetPolicy", "iam:SimulatePrincipalPolicy"}


@pytest.mark.parametrize(("playbook_file", "override", "named", "read"), [
    ("site.yml", BAD_ZONES,
     "stack_zones=['us-east-1a', 'us-east-1z'] is invalid: us-east-1z is not an available zone of us-east-1",
     ZONES_READ),
    ("playbooks/network.yml", BAD_ZONES, "us-east-1z is not an available zone", ZONES_READ),
    ("site.yml", "stack_instance_type=t3.mcro",
     "stack_instance_type=t3.mcro is invalid: EC2 offers no such instance type in us-east-1", TYPES_READ),
    ("playbooks/compute.yml", "stack_instance_type=t3.mcro", "EC2 offers no such instance type", TYPES_READ),
])
def test_what_the_region_lacks_is_named_before_any_change(aws_env: dict[str, str], local_cloud: server.Endpoint,
                                                          playbook_file: str, override: str, named: str,
                                                          read: str) -> None:
    log = local_cloud.request_log
    before = request_log.log_size(log)
    result = playbook(aws_env, playbook_file, "-e", override)
    assert result.returncode != 0
    assert named in result.stdout, result.stdout[-3000:]
    calls = request_log.count_calls(log, before)[1]
    assert read in calls
    assert set(calls) <= {*CALLER_READS, ZONES_READ, TYPES_READ}, calls


@pytest.mark.parametrize("override", ["stack_lb_access_logs_bucket=Bad_Bucket",
                                      '{"stack_lb_kind": "classic", "stack_lb_access_logs_bucket": "logs-bucket"}'])
def test_the_load_balancer_run_alone_refuses_bad_settings_before_its_lock(aws_env: dict[str, str],
                                                                          local_cloud: server.Endpoint,
                                                                          override: str) -> None:
    log = local_cloud.request_log
    before = request_log.log_size(log)
    result = playbook(aws_env, "playbooks/load_balancer.yml", "-e", override)
    assert result.returncode != 0
    assert "stack_lb_access_logs_bucket=" in result.stdout and "is invalid: give an S3 bucket name" in result.stdout, (
        result.stdout[-3000:])
    assert LOCK_TAKEN not in result.stdout
    calls = request_log.count_calls(log, before)[1]
    assert set(calls) <= {"sts:GetCallerIdentity", "iam:ListAccountAliases"}, calls  # the account only


@pytest.mark.parametrize("validated", ["missing", "false"])
def test_an_unpromoted_ami_is_refused_before_any_change(aws_env: dict[str, str], local_cloud: server.Endpoint,
                                                        validated: str) -> None:
    ami = "ami-0123456789abcdef0" if validated == "missing" else make_image(local_cloud, validated)
    log = local_cloud.request_log
    before = request_log.log_size(log)
    result = playbook(aws_env, "site.yml", "-e", f"stack_ami_id={ami}")
    assert result.returncode != 0
    assert f"AMI {ami} is {'missing' if validated == 'missing' else 'not promoted'}" in result.stdout
    calls = request_log.count_calls(log, before)[1]
    assert set(calls) <= {*CALLER_READS, ZONES_READ, TYPES_READ, "ec2:DescribeImages"}, calls


def test_verify_names_an_endpoint_that_does_not_answer_and_reports_no_drift(aws_env: dict[str, str],
                                                                            tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**aws_env, "AWS_ENDPOINT_URL": dead, "NODESTACK_STATE_DIR": str(tmp_path)}
    # as when the endpoint stops answering after site.yml found the caller's account and the AMI
    found = {"stack__deploy_ami": {"image_id": "ami-0123456789abcdef0"},
             "stack__caller": {"account": "123456789012", "arn": "arn:aws:sts::123456789012:user/moto"}}
    result = playbook(env, "playbooks/verify.yml", "-e", json.dumps(found))
    assert result.returncode != 0
    message = re.search(r'"msg": "(.*)"', result.stdout)
    assert message, result.stdout[-3000:]
    assert re.fullmatch(rf"nodeapp-local could not be verified, which says nothing of drift: cannot reach {dead} "
                        r"\(\w+:\w+: Could not connect[^;]*; check the endpoint and the network, then re-run "
                        r"verify\.yml",
                        message.group(1)), message.group(1)
    assert "does not match" not in result.stdout and "Traceback" not in result.stdout
    log = tmp_path / "verify" / "nodeapp-local.log"
    assert "EndpointConnectionError" in log.read_text() and log.stat().st_mode & 0o777 == 0o600


@pytest.mark.usefixtures("site")
def test_nat_gateways_and_endpoints_follow_the_settings(aws_env: dict[str, str], local_cloud: server.Endpoint) -> None:
    """One NAT gateway per zone, then none with an SSM endpoint, then back to the default: what a
    setting no longer asks for goes, Elastic IPs included (they cost money)."""
    ec2 = client(local_cloud.url, "ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["nodeapp-local"]}])["Vpcs"][0]["VpcId"]

    def network(*overrides: str) -> None:
        result = playbook(aws_env, "playbooks/network.yml", *[a for o in overrides for a in ("-e", o)])
        assert result.returncode == 0, result.stdout[-3000:]

    # A stack made before the per-zone private tables: one table for both private subnets.
    legacy = ec2.create_route_table(VpcId=vpc, TagSpecifications=[{"ResourceType": "route-table", "Tags": [
        {"Key": "Name", "Value": "nodeapp-local-private"}, {"Key": "Project", "Value": "nodestack"},
        {"Key": "Environment", "Value": "local"}]}])["RouteTable"]["RouteTableId"]
    for table in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]:
        for association in table["Associations"]:
            if association.get("SubnetId") and "-private-" in str(table.get("Tags")):
                ec2.replace_route_table_association(AssociationId=association["RouteTableAssociationId"],
                                                    RouteTableId=legacy)
    assert routes_out(ec2, vpc)["nodeapp-local-private"][0].count("subnet-") == 2

    network("stack_nat_gateways=per_zone")
    assert "nodeapp-local-private" not in routes_out(ec2, vpc)
    nat = {zone: nat_id for nat_id, zone in nat_gateways(ec2, vpc).items()}
    assert set(nat) == {"us-east-1a", "us-east-1b"}
    routes = routes_out(ec2, vpc)
    assert routes["nodeapp-local-private-us-east-1a"] == (subnet_ids(ec2, "10.40.10.0/24"), nat["us-east-1a"])
    assert routes["nodeapp-local-private-us-east-1b"] == (subnet_ids(ec2, "10.40.11.0/24"), nat["us-east-1b"])

    network("stack_nat_gateways=none", '{"stack_vpc_endpoints": ["ssm"]}')
    assert nat_gateways(ec2, vpc) == {}
    assert ec2.describe_addresses(Filters=[{"Name": "tag:Project", "Values": ["nodestack"]}])["Addresses"] == []
    assert {name: target for name, (_, target) in routes_out(ec2, vpc).items() if "-private-" in name} == {
        "nodeapp-local-private-us-east-1a": None, "nodeapp-local-private-us-east-1b": None}
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                    {"Name": "vpc-endpoint-state", "Values": ["available"]}])
    [endpoint] = endpoints["VpcEndpoints"]
    assert (endpoint["ServiceName"], endpoint["VpcEndpointType"]) == ("com.amazonaws.us-east-1.ssm", "Interface")
    assert sorted(endpoint["SubnetIds"]) == sorted(subnet_ids(ec2, c) for c in ("10.40.10.0/24", "10.40.11.0/24"))
    assert [g["GroupName"] for g in endpoint["Groups"]] == ["nodeapp-local-endpoints"]

    network()
    assert list(nat_gateways(ec2, vpc).values()) == ["us-east-1a"]
    assert ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                              {"Name": "vpc-endpoint-state", "Values": ["available"]}])[
        "VpcEndpoints"] == []
