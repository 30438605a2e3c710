"""`nodestack bake` on the local cloud: dev and prod baked, validated, promoted; a broken
bake promotes nothing; bad input launches nothing."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodestack.bake import job, settings, validate
from nodestack.bake.build_host import podman
from nodestack.local_cloud import server
from tests.conftest import REPO, cli, client

REVISIONS_FILE = REPO / ".state/git-fixture/revisions.json"


@pytest.fixture(scope="module")
def bake_env(local_cloud: server.Endpoint) -> dict[str, str]:
    """The CLI environment of the session's local cloud (its state dir holds the pid file)."""
    return {**os.environ, "NODESTACK_STATE_DIR": str(local_cloud.request_log.parent)}


class ProcessWatch(threading.Thread):
    """Every process's command line while the bake runs, as `ps` shows them to any local user:
    private keys seen there, and the SSH commands that used the bake's key."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop, self.key_in_args, self.ssh = threading.Event(), False, set()  # type: ignore[var-annotated]

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for proc in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    args = proc.read_bytes().split(b"\0")
                except OSError:
                    continue
                line = b" ".join(args).decode(errors="replace")
                self.key_in_args |= "PRIVATE KEY" in line
                if args[0].endswith(b"ssh") and "nodestack-bake-" in line:
                    self.ssh.add(line)


@pytest.fixture(scope="module")
def baked(bake_env: dict[str, str], local_cloud: server.Endpoint) -> Iterator[dict[str, object]]:
    watch = ProcessWatch()
    watch.start()
    try:
        result = cli("bake", "--env", "dev", "--env", "prod", env=bake_env, timeout=1200)
    finally:
        watch.stop.set()
    report = json.loads((Path(bake_env["NODESTACK_STATE_DIR"]) / "bake/report.json").read_text())
    yield {"result": result, "report": {r["env"]: r for r in report["results"]}, "watch": watch}
    for entry in report["results"]:
        if entry["ami_id"]:
            podman("rmi", "-f", f"localhost/nodestack-ami:{entry['ami_id']}", check=False)


def test_bake_succeeds_for_both_environments(baked: dict[str, object]) -> None:
    result = baked["result"]
    assert result.returncode == 0, result.stderr[-3000:]  # type: ignore[attr-defined]
    table = result.stdout  # type: ignore[attr-defined]
    assert "environment  AMI" in table and "passed" in table
    # streamed Packer output carries a prefix per build; the image checks ran inside it
    assert "[dev] ==> amazon-ebs.app:" in table and "[prod] ==> amazon-ebs.app:" in table
    assert table.count("4 passed in") >= 2  # packer/tests/test_image.py, per environment


def test_amis_are_tagged_with_their_origin(baked: dict[str, object], local_cloud: server.Endpoint) -> None:
    ec2 = client(local_cloud.url, "ec2")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    for env, entry in baked["report"].items():  # type: ignore[attr-defined]
        image = ec2.describe_images(ImageIds=[entry["ami_id"]])["Images"][0]
        tags = {t["Key"]: t["Value"] for t in image["Tags"]}
        assert tags["Environment"] == env and tags["validated"] == "true" and tags["Project"] == "nodestack"
        assert tags["GitRevision"].startswith(head)
        assert tags["NodejsVersion"] == "22.11.0" and tags["AppRevision"] == "v1.0.0"
        assert tags["SourceAmi"].startswith("ami-") and "ubuntu" in tags["SourceAmiName"]
        assert len(tags["BuildTimestamp"]) == 14 and image["Name"] == f"nodeapp-{env}-{tags['BuildTimestamp']}"
    # The build volumes went with their instances (moto's CreateImage ignores their size).
    assert ec2.describe_volumes(Filters=[{"Name": "status", "Values": ["available"]}])["Volumes"] == []


def test_build_instances_required_imdsv2(baked: dict[str, object], local_cloud: server.Endpoint) -> None:
    ec2 = client(local_cloud.url, "ec2")
    for env, entry in baked["report"].items():  # type: ignore[attr-defined]
        found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [f"packer-build-{entry['ami_name']}"]}])
        instances = [i for r in found["Reservations"] for i in r["Instances"]]
        assert instances and all(i["MetadataOptions"]["HttpTokens"] == "required" for i in instances), env


def test_the_build_key_never_appears_in_process_arguments(baked: dict[str, object]) -> None:
    watch = baked["watch"]
    assert watch.ssh, "no SSH command with the bake's key was seen"  # type: ignore[attr-defined]
    assert not watch.key_in_args, "a private key was in a process's arguments"  # type: ignore[attr-defined]


def test_the_provisioning_run_checks_the_build_hosts_key(baked: dict[str, object]) -> None:
    seen: set[str] = baked["watch"].ssh  # type: ignore[attr-defined]
    assert not [line for line in seen if "StrictHostKeyChecking=no" in line], "an SSH command skipped the host key check"
    # Ansible's SSH (-o IdentityFile=, from Packer) carries the deploy key: it must refuse an unknown host
    ansible_ssh = [line for line in seen if "IdentityFile=" in line]
    assert ansible_ssh, "Packer's Ansible provisioner was not seen"
    for line in ansible_ssh:
        assert "StrictHostKeyChecking=yes" in line, line
        assert "UserKnownHostsFile=" in line and "UserKnownHostsFile=/dev/null" not in line, line


def test_no_playbook_variables_left_on_disk(baked: dict[str, object], bake_env: dict[str, str]) -> None:
    assert list((Path(bake_env["NODESTACK_STATE_DIR"]) / "bake").glob("*/playbook-vars.json")) == []


def test_promoted_amis_allow_only_imdsv2(baked: dict[str, object], local_cloud: server.Endpoint) -> None:
    ec2 = client(local_cloud.url, "ec2")
    for env, entry in baked["report"].items():  # type: ignore[attr-defined]
        assert ec2.describe_images(ImageIds=[entry["ami_id"]])["Images"][0].get("ImdsSupport") == "v2.0", env


def test_ssm_parameters_point_at_the_promoted_amis(baked: dict[str, object], local_cloud: server.Endpoint) -> None:
    ssm = client(local_cloud.url, "ssm")
    for env, entry in baked["report"].items():  # type: ignore[attr-defined]
        assert ssm.get_parameter(Name=f"/nodeapp/{env}/ami/latest")["Parameter"]["Value"] == entry["ami_id"]


def sample_app_version(container: str, timeout_s: float) -> str | None:
    """The revision the sample app's /health reports inside the container, asked until it answers."""
    probe = ("import json, urllib.request; "
             "print(json.loads(urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=3).read())['version'])")
    deadline = time.monotonic() + timeout_s
    while (result := podman("exec", container, "python3", "-c", probe, check=False)).returncode != 0:
        if time.monotonic() > deadline:
            return None
        time.sleep(1)
    return result.stdout.strip()


def test_local_images_serve_health_after_boot(baked: dict[str, object]) -> None:
    expected = json.loads(REVISIONS_FILE.read_text())["v1.0.0"]
    for env, entry in baked["report"].items():  # type: ignore[attr-defined]
        name = f"nodestack-test-boot-{env}"
        # the inventories read SSM at start; no instance profile here (test_data_plane reads it)
        config_unit = settings.load(env, local=True).app.config_unit
        assert config_unit, f"{env}: the inventory's app reads no configuration"
        podman("run", "-d", "--name", name, "--systemd=always", *validate.empty_configuration(config_unit),
               f"localhost/nodestack-ami:{entry['ami_id']}", "/sbin/init")
        try:
            version = sample_app_version(name, 90)
            assert version is not None, f"{env}: no /health after boot"
            assert version == expected
            mode = podman("exec", name, "grep", "^AUTO_START_MODE=", "/etc/default/nodeapp").stdout.strip()
            assert mode == f"AUTO_START_MODE={'pull' if env == 'dev' else 'baked'}"
        finally:
            podman("rm", "-f", "-t", "0", name, check=False)


def test_no_build_container_or_key_pair_left(baked: dict[str, object], local_cloud: server.Endpoint) -> None:
    assert "nodestack-bake-" not in podman("ps", "-a", "--format", "{{.Names}}").stdout
    pairs = client(local_cloud.url, "ec2").describe_key_pairs()["KeyPairs"]
    assert not [p for p in pairs if p["KeyName"].startswith("nodestack-bake-")]


def test_broken_bake_promotes_nothing(baked: dict[str, object], bake_env: dict[str, str],
                                      local_cloud: server.Endpoint) -> None:
    before = baked["report"]["dev"]["ami_id"]  # type: ignore[index]
    result = cli("bake", "--env", "dev", "--app-revision", "broken", env=bake_env, timeout=900)
    assert result.returncode == 1
    assert "bake dev: FAILED: image checks failed on the build host" in result.stderr
    assert list((Path(bake_env["NODESTACK_STATE_DIR"]) / "bake").glob("*/playbook-vars.json")) == []
    assert "test_healthy_after_a_restart_of_the_unit" in result.stderr
    ssm, ec2 = client(local_cloud.url, "ssm"), client(local_cloud.url, "ec2")
    assert ssm.get_parameter(Name="/nodeapp/dev/ami/latest")["Parameter"]["Value"] == before
    broken = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:AppRevision", "Values": ["broken"]}])
    assert broken["Images"] == [], "the broken AMI is still registered"


@pytest.mark.parametrize(("args", "message"), [
    (["--env", "dev", "--keep", "0"], "--keep 0 is invalid"),
    (["--env", "dev", "-e", "app source version"], "-e 'app source version' is not NAME=VALUE"),
    ([], "no environment given"),
    # the shipped inventory names no app: AWS has nothing to clone
    (["--env", "prod", "--target", "aws", "--ssh-cidr", "203.0.113.7/32"], "app_source_repo is not set in"),
    # no credentials: refused before any call (and never reaching out to the metadata service)
    (["--env", "prod", "--target", "aws", "--ssh-cidr", "203.0.113.7/32",
      "-e", "app_source_repo=https://example.com/app.git", "-e", "app_source_deploy_key="],
     "cannot reach AWS with the current credentials"),
    # the build host's SSH would be open to the internet: refused before any call
    (["--env", "prod", "--target", "aws"], "no --ssh-cidr given"),
    (["--env", "prod", "--target", "aws", "--ssh-cidr", "0.0.0.0/0"], "--ssh-cidr 0.0.0.0/0 is too broad"),
])
def test_bad_input_launches_nothing(args: list[str], message: str, bake_env: dict[str, str]) -> None:
    env = {k: v for k, v in bake_env.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    result = cli("bake", *args, env=env, timeout=120)
    assert result.returncode == 2 and message in result.stderr and "nothing was launched" in result.stderr


def test_no_local_cloud_is_a_clear_error(tmp_path: Path) -> None:
    result = cli("bake", "--env", "dev", env={**os.environ, "NODESTACK_STATE_DIR": str(tmp_path)}, timeout=120)
    assert result.returncode == 2 and "the local cloud is not running" in result.stderr


def test_a_second_bake_of_the_same_environment_waits_its_turn(bake_env: dict[str, str]) -> None:
    os.environ["NODESTACK_STATE_DIR"] = bake_env["NODESTACK_STATE_DIR"]
    try:
        with job.env_lock("prod"):
            result = cli("bake", "--env", "prod", env=bake_env, timeout=300)
    finally:
        del os.environ["NODESTACK_STATE_DIR"]
    assert result.returncode == 1 and "a bake of prod is already running" in result.stderr
