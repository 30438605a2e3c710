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

import re
import shlex
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
    live = False  # first as site.yml's read found them, then as they are
    while True:
        elb = aws("elbv2", live=live) if declared["lb_kind"] == "alb" else aws("elb", live=live)
        group = aws("autoscaling", live=live).describe_auto_scaling_groups(
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
        if live:
            time.sleep(2)
        live = True


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


# What the checks below look at, read in one command per host: each command is a podman exec
# (about 0.1 s) or an SSH round trip through the bastion, and testinfra's own modules make ten.
FACTS = r"""
set -f
unit={unit}
workdir=$(systemctl show -p WorkingDirectory --value "$unit")
g() {{ git -c 'safe.directory=*' -C "$workdir" "$@"; }}
say() {{ printf '%s=%s\n' "$1" "$2"; }}
say active "$(systemctl is-active "$unit")"
say enabled "$(systemctl is-enabled "$unit")"
say listening "$(ss -Hltn | awk '{{print $4}}' | tr '\n' ' ')"
status=$(cloud-init status --long 2>&1)
say cloud_init_rc $?
say cloud_init "$(printf %s "$status" | tr '\n' ';')"
say workdir "$workdir"
head=$(g rev-parse HEAD 2>&1)
say head_rc $?
say head "$head"
wanted=$({wanted})
say wanted_rc $?
say wanted "$wanted"
"""


@pytest.fixture(scope="session")
def facts(hosts: list[Any], aws: Any, declared: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each host's facts (FACTS) by its name; the commit the AMI's AppCommit or AppRevision names."""
    tags = tags_of(aws("ec2").describe_images(ImageIds=[declared["ami_id"]])["Images"][0])
    commit, revision = tags.get(APP_COMMIT, ""), tags.get(APP_REVISION, "")
    assert commit or revision, f"{declared['ami_id']} has no {APP_COMMIT} or {APP_REVISION} tag"
    wanted = f"echo {shlex.quote(commit)}" if commit else f"g rev-parse {shlex.quote(revision + '^{commit}')} 2>&1"
    script = FACTS.format(unit=shlex.quote(declared["app_service"]), wanted=wanted)
    found: dict[str, dict[str, str]] = {}
    for host in hosts:
        output = host.run(script).stdout
        found[host.backend.hostname] = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    return found


def test_app_unit_active_and_enabled(facts: dict[str, dict[str, str]], declared: dict[str, Any]) -> None:
    for name, host in facts.items():
        assert (host["active"], host["enabled"]) == ("active", "enabled"), (
            f"{name}: {declared['app_service']} is {host['active']} and {host['enabled']}, not running+enabled")


def test_app_listens_on_its_port(facts: dict[str, dict[str, str]], declared: dict[str, Any]) -> None:
    for name, host in facts.items():
        listening = host["listening"].split()
        assert any(s.endswith(f":{declared['app_port']}") for s in listening), (name, listening)


def test_cloud_init_finished_without_error(facts: dict[str, dict[str, str]]) -> None:
    for name, host in facts.items():
        assert host["cloud_init_rc"] == "0" and "status: done" in host["cloud_init"], f"{name}: {host['cloud_init']}"


def test_app_revision_is_the_amis(facts: dict[str, dict[str, str]]) -> None:
    """The checkout at the AMI's AppCommit; an AMI baked before the bake recorded it: at what its
    AppRevision names in the checkout."""
    for name, host in facts.items():
        assert host["workdir"], f"{name}: the app's unit has no working directory"
        assert (host["head_rc"], host["wanted_rc"]) == ("0", "0"), (
            f"{name}: cannot read the checkout in {host['workdir']}: {host['head']} / {host['wanted']}")
        assert re.fullmatch(r"[0-9a-f]{40}", host["head"]), f"{name}: HEAD is {host['head']!r}"
        assert host["head"] == host["wanted"], (
            f"{name}: {host['workdir']} is at {host['head']}, the AMI says {host['wanted']}")


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
