"""The local data plane with a real baked AMI: instances are containers started by
cloud-init from the image, the load balancer is HAProxy with real health checks, DNS
answers the hosted zone, and Auto Scaling replaces what dies. One bake and one site.yml
for the module (minutes); the tests then act on that stack."""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodestack.local_cloud import ami_images, server
from nodestack.local_cloud.instances import CLOUD_LABEL, INSTANCE_LABEL, podman
from tests.conftest import LOCAL_SETTINGS, cli, client, endpoint_in, env_for, using_state
from tests.integration.test_site_playbook import playbook

pytestmark = pytest.mark.slow
RELEASE = "nodeapp-local"
URL = "http://app.local.nodeapp.test/health"
MARGIN = 10  # seconds: a tick of the data plane plus HAProxy's check timeout, with room


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[server.Endpoint, Path]]:
    state = tmp_path_factory.mktemp("plane")
    with endpoint_in(state) as endpoint:
        yield endpoint, state


@pytest.fixture(scope="module")
def env(cloud: tuple[server.Endpoint, Path]) -> dict[str, str]:
    return env_for(cloud[0])


# The app's configuration in SSM before anything is baked: if the bake or site.yml ever read
# it, the secret would show in their output or the image.
CONFIG = "/nodeapp/dev/config"
SECRET = f'{secrets.token_hex(12)} "quoted" $NOT_A_VAR `id` back\\slash\nsecond line'


@pytest.fixture(scope="module")
def site(env: dict[str, str]) -> str:
    ssm = client(env["AWS_ENDPOINT_URL"], "ssm")
    ssm.put_parameter(Name=f"{CONFIG}/APP_SECRET", Value=SECRET, Type="SecureString")
    ssm.put_parameter(Name=f"{CONFIG}/GREETING", Value="hello", Type="String")
    baked = cli("bake", "--env", "dev", env=env, timeout=900)
    assert baked.returncode == 0, baked.stdout[-3000:] + baked.stderr[-2000:]
    result = playbook(env, "site.yml")
    assert result.returncode == 0, result.stdout[-4000:]
    return baked.stdout + baked.stderr + result.stdout + result.stderr


def aws(cloud: tuple[server.Endpoint, Path], service: str) -> Any:
    return client(cloud[0].url, service)


def group(cloud: tuple[server.Endpoint, Path]) -> dict[str, Any]:
    return aws(cloud, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[RELEASE])["AutoScalingGroups"][0]


def health(cloud: tuple[server.Endpoint, Path]) -> dict[str, str]:
    arn = group(cloud)["TargetGroupARNs"][0]
    described = aws(cloud, "elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {t["Target"]["Id"]: t["TargetHealth"]["State"] for t in described}


def wait_for(what: str, check: Any, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


def container_of(instance_id: str) -> str | None:
    names = podman("ps", "--filter", f"label={INSTANCE_LABEL}={instance_id}", "--format", "{{.Names}}").stdout.split()
    return names[0] if names else None


def test_site_verifies_the_hosts_themselves(site: str) -> None:
    report = re.search(rf"{RELEASE} verified: (\d+) passed(.*)\"", site)
    assert report, site[-2000:]
    assert int(report.group(1)) >= 12 and "skipped" not in report.group(2), report.group(0)
    assert f"{RELEASE}: 2 instances healthy in the load balancer (min 2, desired 2" in site  # the compute layer's wait


def test_a_fresh_instance_serves_through_the_load_balancer_by_dns_name(site: str, env: dict[str, str]) -> None:
    fetched = cli("local", "curl", URL, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["status"] == "ok"


def test_status_shows_each_instance_in_its_container_and_zone(site: str, env: dict[str, str]) -> None:
    shown = cli("local", "status", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert {"endpoint", "dns", "load_balancers", "instances"} <= set(status)
    assert re.fullmatch(r"127\.0\.0\.1:\d+", status["dns"])
    lb = next(lb for lb in status["load_balancers"] if lb["name"] == RELEASE)
    assert lb["url"].startswith("http://127.") and lb["dns_name"]
    mine = {i["id"]: i for i in status["instances"] if i["id"] in {x["InstanceId"] for x in group_of(env)["Instances"]}}
    assert sorted(i["zone"] for i in mine.values()) == ["us-east-1a", "us-east-1b"]
    assert all(i["container"] and i["state"] == "running" and i["health"] == "healthy" for i in mine.values()), mine


def app_environment(container: str) -> dict[str, str]:
    pid = podman("exec", container, "systemctl", "show", "-p", "MainPID", "--value", "nodeapp").stdout.strip()
    assert pid not in ("", "0"), podman("exec", container, "journalctl", "--no-pager", "-n", "40", "-o", "cat").stdout
    raw = podman("exec", "--privileged", container, "cat", f"/proc/{pid}/environ").stdout  # needs CAP_SYS_PTRACE
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_the_app_reads_its_configuration_from_ssm_at_start_and_only_it_holds_the_secret(
        site: str, cloud: tuple[server.Endpoint, Path], env: dict[str, str]) -> None:
    instance = sorted(i["InstanceId"] for i in group(cloud)["Instances"])[0]
    name = container_of(instance)
    assert name, f"{instance} runs no container"
    environment = app_environment(name)
    assert environment["APP_SECRET"] == SECRET and environment["GREETING"] == "hello"
    assert environment["PORT"] == "3000"  # the roles' own settings stay
    mode = podman("exec", name, "stat", "-c", "%a %U", "/run/nodeapp-config/environment").stdout.split()
    assert mode == ["600", "root"]
    # nowhere else: not the instance's journal, user data, the bake's or site.yml's output, the image
    token = SECRET.split()[0]
    assert token not in podman("exec", name, "journalctl", "--no-pager", "-o", "cat").stdout
    ec2 = client(env["AWS_ENDPOINT_URL"], "ec2")
    versions = ec2.describe_launch_template_versions(LaunchTemplateName=RELEASE)["LaunchTemplateVersions"]
    assert versions and all(token not in base64.b64decode(v["LaunchTemplateData"].get("UserData", "")).decode()
                            for v in versions)
    assert token not in site
    image = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["ImageId"]
    local_image = ami_images.ami_image(str(cloud[0].port), image)
    root = podman("image", "mount", local_image).stdout.strip()
    try:
        found = subprocess.run(["grep", "-rlsF", token, root], capture_output=True, text=True, timeout=300, check=False)
        assert found.returncode == 1 and not found.stdout, found.stdout
    finally:
        podman("image", "unmount", local_image, check=False)
    # a changed parameter reaches the app at its next start
    client(env["AWS_ENDPOINT_URL"], "ssm").put_parameter(Name=f"{CONFIG}/GREETING", Value="hello again",
                                                         Type="String", Overwrite=True)
    podman("exec", name, "systemctl", "restart", "nodeapp", timeout=180)
    assert app_environment(name)["GREETING"] == "hello again"


def group_of(env: dict[str, str]) -> dict[str, Any]:
    return client(env["AWS_ENDPOINT_URL"], "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[RELEASE])["AutoScalingGroups"][0]


def test_a_killed_instance_turns_unhealthy_and_is_replaced_by_one_that_serves(
        site: str, cloud: tuple[server.Endpoint, Path], env: dict[str, str]) -> None:
    before = {i["InstanceId"] for i in group(cloud)["Instances"]}
    victim = sorted(before)[0]
    name = container_of(victim)
    assert name, f"{victim} runs no container"
    podman("kill", name)
    killed = time.monotonic()
    wait_for(f"{victim} unhealthy", lambda: health(cloud).get(victim) in ("unhealthy", "draining", None), 60, 0.5)
    took = time.monotonic() - killed
    limit = LOCAL_SETTINGS["stack_health_check_interval"] * LOCAL_SETTINGS["stack_unhealthy_threshold"] + MARGIN
    assert took <= limit, f"the dead target was seen after {took:.1f}s, more than interval x threshold + {MARGIN}s"
    fresh = wait_for("a replacement in service and healthy", lambda: [
        i for i, state in health(cloud).items() if i not in before and state == "healthy"], 240, 2)
    current = {i["InstanceId"] for i in group(cloud)["Instances"]}
    assert victim not in current and len(current) == 2
    assert container_of(fresh[0]) and container_of(victim) is None
    assert cli("local", "curl", URL, env=env).returncode == 0


def test_site_stops_at_instances_that_do_not_pass_naming_each_with_the_reason(
        site: str, cloud: tuple[server.Endpoint, Path], env: dict[str, str]) -> None:
    scaling = aws(cloud, "autoscaling")
    grace = group(cloud)["HealthCheckGracePeriod"]
    scaling.update_auto_scaling_group(AutoScalingGroupName=RELEASE, HealthCheckGracePeriod=3600)  # not replaced
    victim = sorted(i["InstanceId"] for i in group(cloud)["Instances"])[0]
    name = container_of(victim)
    assert name, f"{victim} runs no container"
    podman("exec", name, "systemctl", "stop", "nodeapp")
    try:
        wait_for(f"{victim} unhealthy", lambda: health(cloud).get(victim) == "unhealthy", 60, 0.5)
        result = playbook(env, "playbooks/compute.yml", "-e", "stack_asg_healthy_timeout=10",
                          "-e", "stack_asg_health_check_grace=3600")
        assert result.returncode != 0, result.stdout[-3000:]
        assert "2 healthy instances wanted, not there after 10 s (stack_asg_healthy_timeout):" in result.stdout, (
            result.stdout[-3000:])
        assert re.search(rf"{victim} unhealthy \([^)]+\)", result.stdout), result.stdout[-3000:]
    finally:
        podman("exec", name, "systemctl", "start", "nodeapp")
        try:  # healthy before the grace is back: an unhealthy instance past its grace would be replaced
            wait_for(f"{victim} healthy again", lambda: health(cloud).get(victim) == "healthy", 60, 1)
        finally:
            scaling.update_auto_scaling_group(AutoScalingGroupName=RELEASE, HealthCheckGracePeriod=grace)


def test_failing_user_data_gives_an_unhealthy_instance(site: str, cloud: tuple[server.Endpoint, Path]) -> None:
    grp = group(cloud)
    template = aws(cloud, "ec2").describe_launch_template_versions(
        LaunchTemplateId=grp["LaunchTemplate"]["LaunchTemplateId"], Versions=["$Default"])["LaunchTemplateVersions"][0]
    image = template["LaunchTemplateData"]["ImageId"]
    broken = "#!/bin/bash\necho 'configuring the app failed' >&2\nexit 3\n"  # boto3 base64-encodes it
    # the template's instance profile: without it the app would fail to read its configuration first
    instance = aws(cloud, "ec2").run_instances(ImageId=image, MinCount=1, MaxCount=1, UserData=broken,
                                               IamInstanceProfile=template["LaunchTemplateData"]["IamInstanceProfile"],
                                               SubnetId=grp["VPCZoneIdentifier"].split(",")[0])["Instances"][0]["InstanceId"]
    aws(cloud, "elbv2").register_targets(TargetGroupArn=grp["TargetGroupARNs"][0], Targets=[{"Id": instance}])
    try:
        wait_for(f"{instance} unhealthy", lambda: health(cloud).get(instance) == "unhealthy", 120, 1)
        name = container_of(instance)
        assert name
        status = podman("exec", name, "cloud-init", "status", "--long", check=False)  # exit 1: it failed
        assert "status: error" in status.stdout and "scripts_user" in status.stdout, status.stdout
        journal = podman("exec", name, "journalctl", "-b", "--no-pager", "-u", "cloud-final").stdout
        assert "configuring the app failed" in journal
    finally:
        aws(cloud, "elbv2").deregister_targets(TargetGroupArn=grp["TargetGroupARNs"][0], Targets=[{"Id": instance}])
        aws(cloud, "ec2").terminate_instances(InstanceIds=[instance])


def test_cloud_config_user_data_runs_and_the_instance_knows_its_zone(site: str,
                                                                     cloud: tuple[server.Endpoint, Path]) -> None:
    grp = group(cloud)
    data = aws(cloud, "ec2").describe_launch_template_versions(
        LaunchTemplateId=grp["LaunchTemplate"]["LaunchTemplateId"], Versions=["$Default"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    config = ("#cloud-config\nwrite_files:\n  - {path: /run/hello, content: from-cloud-config}\n"
              "runcmd:\n  - [sh, -c, 'cloud-init query availability_zone > /run/zone']\n")
    subnet = grp["VPCZoneIdentifier"].split(",")[-1]
    zone = aws(cloud, "ec2").describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailabilityZone"]
    instance = aws(cloud, "ec2").run_instances(ImageId=data["ImageId"], MinCount=1, MaxCount=1, UserData=config,
                                               IamInstanceProfile=data["IamInstanceProfile"],
                                               SubnetId=subnet)["Instances"][0]["InstanceId"]
    try:
        name = wait_for(f"{instance}'s container", lambda: container_of(instance), 60)

        def written() -> list[str]:
            files = [podman("exec", name, "cat", path, check=False) for path in ("/run/hello", "/run/zone")]
            return ([f.stdout.strip() for f in files] if all(f.returncode == 0 and f.stdout.strip() for f in files)
                    else [])
        assert wait_for("cloud-config written", written, 60) == ["from-cloud-config", zone]
    finally:
        aws(cloud, "ec2").terminate_instances(InstanceIds=[instance])


def test_four_instances_spread_two_per_zone(site: str, cloud: tuple[server.Endpoint, Path]) -> None:
    scaling = aws(cloud, "autoscaling")
    scaling.set_desired_capacity(AutoScalingGroupName=RELEASE, DesiredCapacity=4)
    try:
        zones = sorted(i["AvailabilityZone"] for i in group(cloud)["Instances"])
        assert zones == ["us-east-1a", "us-east-1a", "us-east-1b", "us-east-1b"]
        wait_for("four containers", lambda: all(container_of(i["InstanceId"]) for i in group(cloud)["Instances"]), 60)
    finally:
        scaling.set_desired_capacity(AutoScalingGroupName=RELEASE, DesiredCapacity=2)


def runs(pid: int, program: bytes) -> bool:
    """pid is alive and runs program; a zombie (dead, not yet reaped by init) has no command line."""
    try:
        return program in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_local_down_leaves_nothing_running(site: str, cloud: tuple[server.Endpoint, Path]) -> None:
    endpoint, state = cloud
    plane = json.loads((state / "data-plane" / "status.json").read_text())
    images = [name for name, owner in ami_images.listed().items() if owner == str(endpoint.port)]
    assert images, "the bake committed no image for this cloud"
    with using_state(state):
        server.down()
    label = f"label={CLOUD_LABEL}={endpoint.port}"
    assert podman("ps", "-a", "-q", "--filter", label).stdout.split() == []
    assert podman("network", "exists", f"nodestack-{endpoint.port}", check=False).returncode != 0
    assert not [name for name in images if podman("image", "exists", name, check=False).returncode == 0]
    assert plane["haproxy_pid"] and not runs(plane["haproxy_pid"], b"haproxy")
    host, _, port = plane["dns"].partition(":")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
    assert not Path(f"/proc/{endpoint.pid}").exists()
