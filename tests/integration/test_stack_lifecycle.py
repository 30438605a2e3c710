"""The whole stack on a local cloud of its own: check mode, verify, rolling update and its
guard, an interrupted run, teardown."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodestack import permissions
from nodestack.local_cloud import identities, request_log, server
from tests.conftest import BIN, LOCAL_SETTINGS, REPO, client, endpoint_in, env_for, make_image
from tests.integration.test_site_playbook import playbook, recap

WRITES = re.compile(r":(Create|Put|Delete|Modify|Update|Attach|Detach|Register|Deregister|Run|Terminate|Start|Set|Add"
                    r"|Remove|Change|Associate|Authorize|Revoke|Enable|Disable)")


# Marks a run's processes: every process it forks or starts inherits its environment. Ansible's
# task workers run in sessions of their own (setsid), so a SIGKILL of the run's process group misses
# them, and one waiting on Mitogen's multiplexer, which the kill took, waits for ever (docs/stack.md).
RUN_MARK = "NODESTACK_TEST_RUN"


def marked(mark: str) -> dict[int, str]:
    """The live processes (zombies are dead) whose environment has RUN_MARK=mark: pid -> command line."""
    wanted, found = f"{RUN_MARK}={mark}".encode(), {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if wanted not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # ended meanwhile
            continue
        if state != "Z":
            found[int(proc.name)] = command
    return found


def reap(mark: str, grace: float = 5.0) -> dict[int, str]:
    """Ends every process of the marked run: SIGTERM, SIGKILL to those alive after `grace` seconds.
    Returns those found alive. Each is signalled right after its mark was read: Linux hands out pids
    in turn up to pid_max, so none is reused in between."""
    found = marked(mark)
    for stop, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        for pid in marked(mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, stop)
        deadline = time.monotonic() + wait
        while marked(mark) and time.monotonic() < deadline:
            time.sleep(0.1)
    return found


# An orphan as the killed run can leave: in a session of its own, deaf to SIGTERM, its parent gone.
ORPHAN = """
import os, signal, sys, time
ready, told = os.pipe()
if os.fork():
    os.read(ready, 1)
    sys.exit(0)
os.setsid()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.write(told, b"1")
time.sleep(600)
"""


def test_reap_ends_an_orphan_of_its_own_session_that_ignores_sigterm() -> None:
    mark = secrets.token_hex(8)
    subprocess.run([sys.executable, "-c", ORPHAN], env={**os.environ, RUN_MARK: mark}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30, check=True)
    (orphan,) = marked(mark)
    assert os.getsid(orphan) == orphan != os.getsid(0)
    assert list(reap(mark, grace=0.5)) == [orphan]
    assert marked(mark) == {}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.Endpoint]:
    """A local cloud of this module's own (teardown must not meet other tests' stacks), with
    a promoted AMI, so any test here runs alone."""
    with endpoint_in(tmp_path_factory.mktemp("stack")) as endpoint:
        promote(endpoint)
        yield endpoint


@pytest.fixture(scope="module")
def env(cloud: server.Endpoint) -> dict[str, str]:
    return env_for(cloud)


def promote(cloud: server.Endpoint) -> str:
    ami = make_image(cloud, "true")
    client(cloud.url, "ssm").put_parameter(Name="/nodeapp/dev/ami/latest", Value=ami, Type="String", Overwrite=True)
    return ami


def writes_since(cloud: server.Endpoint, offset: int) -> list[str]:
    return sorted(call for call in request_log.count_calls(cloud.request_log, offset)[1] if WRITES.search(call))


def group_amis(cloud: server.Endpoint) -> list[str]:
    group = client(cloud.url, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["nodeapp-local"])["AutoScalingGroups"][0]
    ids = [i["InstanceId"] for i in group["Instances"]]
    reservations = client(cloud.url, "ec2").describe_instances(InstanceIds=ids)["Reservations"]
    return sorted(i["ImageId"] for r in reservations for i in r["Instances"])


def template_ami(cloud: server.Endpoint, keys: dict[str, str] | None = None) -> str:
    """The AMI the group's scale-outs launch: its launch template's default version's."""
    versions = client(cloud.url, "ec2", keys).describe_launch_template_versions(
        LaunchTemplateName="nodeapp-local", Versions=["$Default"])["LaunchTemplateVersions"]
    return str(versions[0]["LaunchTemplateData"]["ImageId"])


def test_check_mode_on_an_empty_account_changes_nothing(cloud: server.Endpoint, env: dict[str, str]) -> None:
    before = request_log.log_size(cloud.request_log)
    result = playbook(env, "site.yml", "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result.stdout)["changed"] > 0, "check mode must show what would change"
    # the preview goes on past the instance role to the network, where the VPC is first needed
    for layer, task in (("stack_iam", "Create the instance role"), ("stack_network", "Create the VPC")):
        assert "changed:" in result.stdout.split(f"TASK [{layer} : {task}")[1].split("TASK [")[0], task
    assert writes_since(cloud, before) == []


@pytest.fixture(scope="module")
def built(cloud: server.Endpoint, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """site.yml's cold create, once for the tests that need the stack as it declares it (each
    leaves it so: drift restored, rollouts to the promoted AMI that site.yml would pick)."""
    result = playbook(env, "site.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    return result


def test_site_builds_verifies_and_check_mode_shows_a_change(cloud: server.Endpoint, env: dict[str, str],
                                                            built: subprocess.CompletedProcess[str]) -> None:
    result = built
    assert re.search(r"nodeapp-local verified: \d+ passed", result.stdout), result.stdout[-2000:]
    again = playbook(env, "site.yml")  # the first re-run after a cold create
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    before = request_log.log_size(cloud.request_log)
    check = playbook(env, "site.yml", "--check", "--diff", "-e", "stack_app_port=3001",
                     "-e", "stack_health_check_port=3001")
    assert check.returncode == 0, check.stdout[-3000:]
    app_group_task = check.stdout.split("App group - ")[1].split("TASK [")[0]
    assert '-            "from_port": 3000,' in app_group_task and '+            "from_port": "3001",' in app_group_task
    assert writes_since(cloud, before) == []
    app = client(cloud.url, "ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["nodeapp-local-app"]}])
    assert [p["FromPort"] for p in app["SecurityGroups"][0]["IpPermissions"]] == [3000]


def test_check_mode_previews_a_zone_added_to_the_stack(cloud: server.Endpoint, env: dict[str, str],
                                                      built: subprocess.CompletedProcess[str]) -> None:
    """The new zone's subnets show as to be created; the layers that place themselves in them
    (routes, NAT, load balancer, group) have nothing to preview yet, so the play ends there."""
    region = LOCAL_SETTINGS["aws_region"]
    zones = {"stack_zones": [f"{region}a", f"{region}b", f"{region}c"],
             "stack_public_subnets": ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24"],
             "stack_private_subnets": ["10.40.10.0/24", "10.40.11.0/24", "10.40.12.0/24"]}
    before = request_log.log_size(cloud.request_log)
    check = playbook(env, "site.yml", "--check", "--diff", "-e", json.dumps(zones))
    assert check.returncode == 0, check.stdout[-3000:]
    subnets_task = check.stdout.split("TASK [stack_network : Create the subnets")[1].split("TASK [")[0]
    assert re.search(rf"changed: .*public {region}c 10\.40\.2\.0/24", subnets_task), subnets_task
    assert re.search(rf"changed: .*private {region}c 10\.40\.12\.0/24", subnets_task), subnets_task
    assert "TASK [stack_load_balancer" not in check.stdout
    assert writes_since(cloud, before) == []


def test_verify_fails_when_the_stack_drifts(cloud: server.Endpoint, env: dict[str, str],
                                            built: subprocess.CompletedProcess[str]) -> None:
    asg = client(cloud.url, "autoscaling")
    declared = LOCAL_SETTINGS["stack_asg_health_check_grace"]
    asg.update_auto_scaling_group(AutoScalingGroupName="nodeapp-local", HealthCheckGracePeriod=declared + 1)
    try:
        result = playbook(env, "playbooks/verify.yml")
        assert result.returncode != 0
        assert "FAILED verify/test_deployed_stack.py::test_group_capacity_and_subnets" in result.stdout
    finally:
        asg.update_auto_scaling_group(AutoScalingGroupName="nodeapp-local", HealthCheckGracePeriod=declared)


def test_rollout_replaces_every_instance_with_the_new_ami(cloud: server.Endpoint, env: dict[str, str],
                                                          built: subprocess.CompletedProcess[str]) -> None:
    old = group_amis(cloud)
    new_ami = promote(cloud)
    assert new_ami not in old
    # as in prod: site.yml keeps the AMI the group launches, only the rollout moves it
    kept = playbook(env, "site.yml", "-e", "stack_ami_rollout_only=true")
    assert kept.returncode == 0 and recap(kept.stdout)["changed"] == 0, kept.stdout[-3000:]
    assert f"promoted {new_ami} waits for playbooks/rollout.yml" in kept.stdout
    assert template_ami(cloud) == old[0] and group_amis(cloud) == old
    result = playbook(env, "playbooks/rollout.yml", "-e", "stack_ami_rollout_only=true")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"replaced 2 instance(s) with {new_ami}, at most 1 at a time" in result.stdout
    assert group_amis(cloud) == [new_ami, new_ami] and template_ami(cloud) == new_ami
    # the target group holds the new instances only
    verified = playbook(env, "playbooks/verify.yml", "-e", "stack_ami_rollout_only=true")
    assert verified.returncode == 0, verified.stdout[-3000:]
    again = playbook(env, "playbooks/rollout.yml")
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0
    assert "nothing to roll out" in again.stdout


def test_rollout_that_replaces_all_at_once_needs_confirmation(cloud: server.Endpoint, env: dict[str, str],
                                                              built: subprocess.CompletedProcess[str]) -> None:
    old = group_amis(cloud)
    new_ami = promote(cloud)
    before = request_log.log_size(cloud.request_log)
    refused = playbook(env, "playbooks/rollout.yml", "-e", "stack_rollout_min_healthy_percentage=0")
    assert refused.returncode != 0
    assert "would replace all 2 instances of nodeapp-local at once" in refused.stdout
    assert "-e confirm_replace=true" in refused.stdout
    # only the run lock (taken before the plan is read, released when the run ends)
    assert writes_since(cloud, before) == ["ssm:DeleteParameter", "ssm:PutParameter"]
    assert group_amis(cloud) == old
    confirmed = playbook(env, "playbooks/rollout.yml", "-e", "stack_rollout_min_healthy_percentage=0",
                         "-e", "confirm_replace=true")
    assert confirmed.returncode == 0, confirmed.stdout[-3000:]
    assert group_amis(cloud) == [new_ami, new_ami]


def weights(cloud: server.Endpoint) -> dict[str, int]:
    route53 = client(cloud.url, "route53")
    zone = route53.list_hosted_zones_by_name(DNSName="local.nodeapp.test.")["HostedZones"][0]["Id"]
    return {r["SetIdentifier"]: r["Weight"]
            for r in route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
            if r["Name"] == "app.local.nodeapp.test." and "SetIdentifier" in r}


def records_of_converged_runs(cloud: server.Endpoint) -> set[str]:
    found = client(cloud.url, "ssm").get_parameters_by_path(Path="/nodeapp/local/state")["Parameters"]
    return {p["Name"] for p in found}


def test_bluegreen_shifts_in_steps_checks_health_and_rolls_back(cloud: server.Endpoint, env: dict[str, str]) -> None:
    assert playbook(env, "playbooks/teardown.yml").returncode == 0  # blue/green replaces the single release
    assert records_of_converged_runs(cloud) == set(), "teardown forgets site.yml's record"
    for args in (["-e", "stack_color=blue"], ["-e", "stack_color=green", "-e", "stack_dns_weight=0"]):
        built = playbook(env, "site.yml", *args)
        assert built.returncode == 0, built.stdout[-3000:]
    assert weights(cloud) == {"app-blue": 100, "app-green": 0}

    shifted = playbook(env, "playbooks/bluegreen.yml", "-e", "bluegreen_to=green",
                       "-e", '{"stack_bluegreen_steps": [50, 100]}')
    assert shifted.returncode == 0, shifted.stdout[-3000:]
    assert "Step 1 - green at 50%" in shifted.stdout and "Step 2 - green at 100%" in shifted.stdout
    assert weights(cloud) == {"app-blue": 0, "app-green": 100}
    # a later site run of a colour keeps the weight blue/green set
    assert playbook(env, "site.yml", "-e", "stack_color=blue").returncode == 0
    assert weights(cloud) == {"app-blue": 0, "app-green": 100}

    asg = client(cloud.url, "autoscaling")
    blue = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["nodeapp-local-blue"])["AutoScalingGroups"][0]
    sick = blue["Instances"][0]["InstanceId"]
    asg.set_instance_health(InstanceId=sick, HealthStatus="Unhealthy")
    refused = playbook(env, "playbooks/bluegreen.yml", "-e", "bluegreen_to=blue")
    assert refused.returncode != 0
    assert "nodeapp-local-blue is not healthy" in refused.stdout and sick in refused.stdout
    assert weights(cloud) == {"app-blue": 0, "app-green": 100}, "a failed step puts the weights back"
    asg.set_instance_health(InstanceId=sick, HealthStatus="Healthy")

    rolled_back = playbook(env, "playbooks/bluegreen.yml", "-e", "bluegreen_to=green", "-e", "bluegreen_rollback=true")
    assert rolled_back.returncode == 0, rolled_back.stdout[-3000:]
    assert weights(cloud) == {"app-blue": 100, "app-green": 0}

    # one colour goes; the other's record (its own set identifier) stays
    assert playbook(env, "playbooks/teardown.yml", "-e", "stack_color=green").returncode == 0
    assert weights(cloud) == {"app-blue": 100}
    groups = client(cloud.url, "autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert [g["AutoScalingGroupName"] for g in groups] == ["nodeapp-local-blue"]
    assert records_of_converged_runs(cloud) == {"/nodeapp/local/state/nodeapp-local-blue"}


def test_interrupted_run_converges_without_duplicates(cloud: server.Endpoint, env: dict[str, str]) -> None:
    assert playbook(env, "playbooks/teardown.yml").returncode == 0
    log = cloud.request_log
    before = request_log.log_size(log)
    mark = secrets.token_hex(8)
    run = subprocess.Popen([str(BIN / "ansible-playbook"), "site.yml"], cwd=REPO, env={**env, RUN_MARK: mark},
                           start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while "elasticloadbalancing:CreateTargetGroup" not in request_log.count_calls(log, before)[1]:
            assert run.poll() is None and time.monotonic() < deadline, "site.yml ended before the load balancer step"
            time.sleep(0.2)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)  # as a lost terminal or a dead CI runner would
        run.wait()
        # what the kill missed (a task worker in a session of its own), before the next run meets it
        left = reap(mark)
    assert marked(mark) == {}, f"still running after SIGKILL: {marked(mark)} (found {left})"
    result = playbook(env, "site.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    ec2, elb = client(cloud.url, "ec2"), client(cloud.url, "elbv2")
    tagged = [{"Name": "tag:Project", "Values": ["nodestack"]}, {"Name": "tag:Environment", "Values": ["local"]}]
    assert len(ec2.describe_vpcs(Filters=tagged)["Vpcs"]) == 1
    assert len(ec2.describe_subnets(Filters=tagged)["Subnets"]) == 4
    assert len(ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]) == 2
    assert [b["LoadBalancerName"] for b in elb.describe_load_balancers()["LoadBalancers"]] == ["nodeapp-local"]
    assert [g["TargetGroupName"] for g in elb.describe_target_groups()["TargetGroups"]] == ["nodeapp-local-app"]
    groups = client(cloud.url, "autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert [(g["AutoScalingGroupName"], len(g["Instances"])) for g in groups] == [("nodeapp-local", 2)]


def test_two_apps_side_by_side_and_one_torn_down_leaves_the_other_whole(cloud: server.Endpoint,
                                                                         env: dict[str, str]) -> None:
    """Two apps in one account and environment: each finds only its own resources (App tag).
    Before the teardown test, so nodeapp's stack is the one the interrupted run left (a no-op)."""
    shop = ["-e", "stack_app_name=shop", "-e", "stack_dns_name=shop"]
    client(cloud.url, "ssm").put_parameter(Name="/shop/dev/ami/latest", Value=make_image(cloud, "true"),
                                           Type="String", Overwrite=True)
    client(cloud.url, "iam").create_policy(  # what an administrator makes once per app (docs/aws-setup.md)
        PolicyName="shop-instance-boundary", PolicyDocument=json.dumps(permissions.render(
            "instance-boundary", permissions.Scope("shop", identities.ACCOUNT, server.DEFAULT_REGION))))
    for args in ([], shop):
        built = playbook(env, "site.yml", *args)
        assert built.returncode == 0, built.stdout[-3000:]
    torn = playbook(env, "playbooks/teardown.yml", *shop)
    assert torn.returncode == 0, torn.stdout[-3000:]
    ec2 = client(cloud.url, "ec2")
    assert ec2.describe_vpcs(Filters=[{"Name": "tag:App", "Values": ["shop"]}])["Vpcs"] == []
    assert ec2.describe_security_groups(Filters=[{"Name": "tag:App", "Values": ["shop"]}])["SecurityGroups"] == []
    names = [lb["LoadBalancerName"] for lb in client(cloud.url, "elbv2").describe_load_balancers()["LoadBalancers"]]
    assert names == ["nodeapp-local"]
    logs = client(cloud.url, "logs").describe_log_groups(logGroupNamePrefix="/")["logGroups"]
    assert [g["logGroupName"] for g in logs if g["logGroupName"].startswith(("/shop/", "/nodeapp/"))] == [
        "/nodeapp/local"]
    verified = playbook(env, "playbooks/verify.yml")  # nodeapp's stack as it declares it, nothing missing
    assert verified.returncode == 0 and "nodeapp-local verified" in verified.stdout, verified.stdout[-3000:]
    again = playbook(env, "site.yml")
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]


def test_teardown_refuses_prod_without_confirmation(cloud: server.Endpoint, env: dict[str, str]) -> None:
    before = request_log.log_size(cloud.request_log)
    result = playbook(env, "playbooks/teardown.yml", "-e", "stack_env=prod")
    assert result.returncode != 0
    assert "Re-run with -e confirm_teardown=prod" in result.stdout
    assert request_log.count_calls(cloud.request_log, before)[0] == 0


def test_teardown_removes_everything_and_is_idempotent(cloud: server.Endpoint, env: dict[str, str]) -> None:
    assert playbook(env, "site.yml").returncode == 0
    # another environment's resource, which teardown must not touch
    ec2 = client(cloud.url, "ec2")
    other = ec2.create_vpc(CidrBlock="10.99.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [
        {"Key": "Project", "Value": "nodestack"}, {"Key": "Environment", "Value": "dev"},
        {"Key": "Name", "Value": "nodeapp-local"}]}])
    # the Elastic IP of a run stopped before it made its NAT gateway: unattached, and billed
    ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [
        {"Key": "Project", "Value": "nodestack"}, {"Key": "App", "Value": "nodeapp"},
        {"Key": "Environment", "Value": "local"}, {"Key": "Name", "Value": "nodeapp-local-nat-us-east-1b"}]}])
    # an alarm of the team's own under the stack's name prefix, tagged like the stack's: not a release's
    cloudwatch = client(cloud.url, "cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="nodeapp-local-disk-full", MetricName="x", Namespace="Team", Statistic="Maximum", Period=60,
        EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
        Tags=[{"Key": "Project", "Value": "nodestack"}, {"Key": "Environment", "Value": "local"}])
    # a stack built in another environment with the same name and zone, which took the record over
    route53 = client(cloud.url, "route53")
    zone = route53.list_hosted_zones_by_name(DNSName="local.nodeapp.test.")["HostedZones"][0]["Id"]
    foreign = "nodeapp-other-1.us-east-1.elb.amazonaws.com."
    taken = {"Name": "app.local.nodeapp.test.", "Type": "A",
             "AliasTarget": {"HostedZoneId": "Z35SXDOTRQ7X7K", "DNSName": foreign, "EvaluateTargetHealth": True}}
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": taken}]})
    result = playbook(env, "playbooks/teardown.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Left app.local.nodeapp.test.: it points at nodeapp-other-1" in result.stdout
    assert "Kept the hosted zone local.nodeapp.test (stack_dns_create_zone): it still holds app.local" in result.stdout
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    assert [r["AliasTarget"]["DNSName"] for r in records if r["Type"] == "A"] == [foreign]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "DELETE", "ResourceRecordSet": taken}]})
    zone_only = playbook(env, "playbooks/teardown.yml")  # the zone, now that nothing else is in it
    assert zone_only.returncode == 0 and recap(zone_only.stdout)["changed"] == 1, zone_only.stdout[-3000:]
    tagged = [{"Name": "tag:Project", "Values": ["nodestack"]}, {"Name": "tag:Environment", "Values": ["local"]}]
    assert ec2.describe_vpcs(Filters=tagged)["Vpcs"] == []
    assert ec2.describe_security_groups(Filters=tagged)["SecurityGroups"] == []
    assert ec2.describe_addresses(Filters=tagged)["Addresses"] == []
    assert ec2.describe_launch_templates()["LaunchTemplates"] == []
    assert client(cloud.url, "elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert client(cloud.url, "elbv2").describe_target_groups()["TargetGroups"] == []
    assert client(cloud.url, "autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"] == []
    assert [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]] == ["nodeapp-local-disk-full"]
    assert client(cloud.url, "iam").list_instance_profiles()["InstanceProfiles"] == []
    assert client(cloud.url, "route53").list_hosted_zones()["HostedZones"] == []
    assert [v["VpcId"] for v in ec2.describe_vpcs(VpcIds=[other["Vpc"]["VpcId"]])["Vpcs"]] == [other["Vpc"]["VpcId"]]
    again = playbook(env, "playbooks/teardown.yml")
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0
