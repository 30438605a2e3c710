"""The deployed hosts themselves (pytest-testinfra), not only the API's view of them: the
app's unit active and enabled, listening on the app port, cloud-init finished without
error, the checkout at the AMI's app revision, and a request through the load balancer by
its DNS name.

On the local cloud the hosts are the instances' containers, reached over Podman (their
names come from Podman's labels, never from the emulator's invented addresses). On AWS set
`verify_hosts_via` (see docs/stack.md): `ssh` reaches them through the bastion with the
inventory's SSH settings; without it these tests are reported skipped, with the reason.
"""

from __future__ import annotations

import ssl
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
import testinfra

from nodestack.bake.registry import APP_COMMIT, APP_REVISION, tags_of
from nodestack.local_cloud import local_status
from nodestack.local_cloud.dns import query_a
from nodestack.local_cloud.instances import INSTANCE_LABEL, podman

READY_MARGIN = 60  # seconds beyond the grace period for new instances to pass their checks


def _local(declared: dict[str, Any]) -> bool:
    url = declared["connection"].get("endpoint_url") or ""
    return urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


@pytest.fixture(scope="session")
def in_service(aws: Any, declared: dict[str, Any]) -> list[str]:
    """The group's instances, once every one passes the load balancer's health check."""
    deadline = time.monotonic() + int(declared["health_check_grace"]) + READY_MARGIN
    elb = aws("elbv2", live=True) if declared["lb_kind"] == "alb" else aws("elb", live=True)
    while True:
        group = aws("autoscaling", live=True).describe_auto_scaling_groups(
            AutoScalingGroupNames=[declared["release"]])["AutoScalingGroups"][0]
        ids = sorted(i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService")
        if declared["lb_kind"] == "alb":
            healthy = {t["Target"]["Id"] for arn in group["TargetGroupARNs"]
                       for t in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
                       if t["TargetHealth"]["State"] == "healthy"}
        else:
            healthy = {s["InstanceId"] for s in elb.describe_instance_health(
                LoadBalancerName=group["LoadBalancerNames"][0])["InstanceStates"] if s["State"] == "InService"}
        if ids and len(ids) >= group["DesiredCapacity"] and set(ids) <= healthy:
            return ids
        assert time.monotonic() < deadline, (
            f"instances {sorted(set(ids) - healthy)} of {declared['release']} did not pass the load balancer's "
            f"health check within the grace period + {READY_MARGIN}s")
        time.sleep(2)


@pytest.fixture(scope="session")
def hosts(in_service: list[str], declared: dict[str, Any]) -> list[Any]:
    if not _local(declared):
        via = declared.get("hosts_via") or ""
        if via != "ssh":
            pytest.skip("host checks on AWS need verify_hosts_via=ssh (through the bastion): see docs/stack.md")
        return [testinfra.get_host(f"ssh://{i}", ssh_config=declared.get("ssh_config") or None) for i in in_service]
    names = {i: podman("ps", "--filter", f"label={INSTANCE_LABEL}={i}", "--format", "{{.Names}}").stdout.split()
             for i in in_service}
    if not any(names.values()):
        pytest.skip(f"{declared['ami_id']} has no local image, so its instances are API-only: "
                    "bake it with `nodestack bake` to run them")
    missing = sorted(i for i, found in names.items() if not found)
    assert not missing, f"instances {missing} run no container although their group's AMI has a local image"
    return [testinfra.get_host(f"podman://{found[0]}") for found in names.values()]


def test_app_unit_active_and_enabled(hosts: list[Any], declared: dict[str, Any]) -> None:
    for host in hosts:
        unit = host.service(declared["app_service"])
        assert unit.is_running and unit.is_enabled, (
            f"{host.backend.hostname}: {declared['app_service']} not running+enabled")


def test_app_listens_on_its_port(hosts: list[Any], declared: dict[str, Any]) -> None:
    for host in hosts:
        listening = host.socket.get_listening_sockets()
        assert any(s.endswith(f":{declared['app_port']}") for s in listening), (host.backend.hostname, listening)


def test_cloud_init_finished_without_error(hosts: list[Any]) -> None:
    for host in hosts:
        result = host.run("cloud-init status --long")
        assert result.rc == 0 and "status: done" in result.stdout, f"{host.backend.hostname}: {result.stdout}"


def test_app_revision_is_the_amis(hosts: list[Any], aws: Any, declared: dict[str, Any]) -> None:
    """The checkout at the AMI's AppCommit; an AMI baked before the bake recorded it: at what its
    AppRevision names in the checkout."""
    tags = tags_of(aws("ec2").describe_images(ImageIds=[declared["ami_id"]])["Images"][0])
    commit, revision = tags.get(APP_COMMIT), tags.get(APP_REVISION)
    assert commit or revision, f"{declared['ami_id']} has no {APP_COMMIT} or {APP_REVISION} tag"
    for host in hosts:
        workdir = host.run(f"systemctl show -p WorkingDirectory --value {declared['app_service']}").stdout.strip()
        git = f"git -c safe.directory='*' -C {workdir}"
        head = host.check_output(f"{git} rev-parse HEAD")
        wanted = commit or host.check_output(f"{git} rev-parse {revision}^{{commit}}")
        assert head == wanted, f"{host.backend.hostname}: {workdir} is at {head}, the AMI says {revision} ({wanted})"


def test_request_through_the_load_balancer_by_dns_name(in_service: list[str], declared: dict[str, Any],
                                                       request: pytest.FixtureRequest) -> None:
    if not declared["dns_zone"]:
        pytest.skip("no DNS record: stack_dns_zone is empty")
    if _local(declared):
        request.getfixturevalue("hosts")  # skips when the instances are API-only: nothing would answer
    name = declared["dns_record"]
    scheme = "https" if declared["certificate_arn"] else "http"
    url, headers, context = f"{scheme}://{name}{declared['health_check_path']}", {}, None
    if _local(declared):
        status = local_status.snapshot()
        assert status and status["dns"], "the local cloud's DNS server is not running"
        host, _, port = str(status["dns"]).partition(":")
        address = query_a((host, int(port)), name)[0]
        assert address.startswith("127."), f"{name} resolves to {address}, not a local load balancer"
        url, headers = f"{scheme}://{address}{declared['health_check_path']}", {"Host": name}
        context = ssl._create_unverified_context()  # the local listener's certificate is self-signed
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10, context=context) as response:
        assert response.status == 200, f"{url}: HTTP {response.status}"
