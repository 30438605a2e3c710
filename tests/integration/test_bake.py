"""`nodestack bake` on the local cloud: a team's own app (the Express fixture, from a directory
of this machine, its Node.js version from its .nvmrc) baked for dev and prod, validated,
promoted; a broken bake promotes nothing; bad input launches nothing. The bundled sample
app's bake is test_data_plane's."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodestack import names, ssm_lock
from nodestack.bake import job, settings, validate
from nodestack.bake.build_host import podman
from nodestack.local_cloud import server
from nodestack.local_cloud.ami_images import ami_image
from tests.conftest import REPO, cli, client

FIXTURES = REPO / ".state/app-fixtures"  # scripts/app-fixtures.sh: a team's repositories, tagged v1
# What a team with such an app sets to bake it (group_vars/app_servers.yml for them, -e @FILE
# here). None has a health endpoint: the check is /. This machine reaches npm through a
# TLS-inspecting proxy whose CA only the host trusts, and whose metadata carries no npm signatures.
TEAM_SETTINGS = {
    "app_source_version": "v1",
    "stack_health_check_path": "/",
    "app_build_ca_certificates": "{{ lookup('ansible.builtin.file', '/etc/ssl/certs/ca-certificates.crt') }}",
    "app_build_corepack_verify_signatures": False,
}
# Per fixture app: its own settings, and what it answers on / once its dependencies (and
# build) are in place. Express takes its Node.js version from its .nvmrc.
TEAM_APPS: dict[str, tuple[dict[str, object], dict[str, str]]] = {
    "express": ({"nodejs_version": "auto"}, {"app": "express", "env": "production", "computed": "function"}),
    "native": ({}, {"app": "native", "env": "production", "computed": "42 sh"}),
    "typescript": ({"app_build_script": "build"}, {"app": "typescript", "env": "production", "computed": "1s"}),
    "berry": ({}, {"app": "berry", "env": "production", "computed": "3s"}),
}


def bake_team_apps(apps: dict[str, str], bake_env: dict[str, str], workdir: Path) -> dict[str, dict[str, object]]:
    """Bake {env: fixture app} side by side (one `nodestack bake` per environment, as two teams'
    jobs would run): per env, the process and its report entry."""
    runs: dict[str, dict[str, object]] = {}

    def bake(env: str, app: str) -> None:
        settings_file, report = workdir / f"{env}-{app}.json", workdir / f"{env}-{app}-report.json"
        settings_file.write_text(json.dumps({**TEAM_SETTINGS, "app_source_repo": str(FIXTURES / f"{app}.git"),
                                             **TEAM_APPS[app][0]}))
        result = cli("bake", "--env", env, "-e", f"@{settings_file}", "--report", str(report), env=bake_env,
                     timeout=1200)
        entry = json.loads(report.read_text())["results"][0] if report.is_file() else {}
        runs[env] = {"app": app, "result": result, "entry": entry}

    threads = [threading.Thread(target=bake, args=item) for item in apps.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return runs


@pytest.fixture(scope="module")
def bake_env(local_cloud: server.Endpoint, test_fixtures: Path) -> dict[str, str]:
    """The CLI environment of the session's local cloud (its state dir holds the pid file), with
    the team apps' repositories in place."""
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
def baked(bake_env: dict[str, str], local_cloud: server.Endpoint,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    watch = ProcessWatch()
    watch.start()
    try:
        runs = bake_team_apps({"dev": "express", "prod": "native"}, bake_env, tmp_path_factory.mktemp("baked"))
    finally:
        watch.stop.set()
    yield {"runs": runs, "report": {env: run["entry"] for env, run in runs.items()}, "watch": watch}
    for run in runs.values():
        if run["entry"].get("ami_id"):  # type: ignore[attr-defined]
            podman("rmi", "-f", ami_image(str(local_cloud.port), run["entry"]["ami_id"]), check=False)  # type: ignore[index]


def test_bake_succeeds_for_both_environments(baked: dict[str, object], local_cloud: server.Endpoint) -> None:
    ssm = client(local_cloud.url, "ssm")
    for env, run in baked["runs"].items():  # type: ignore[attr-defined]
        result = run["result"]
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert ssm_lock.read(ssm, names.bake_lock_parameter("nodeapp", env)) is None, f"{env}: the bake left its lock"
        table = result.stdout
        assert "environment  AMI" in table and "passed" in table
        # streamed Packer output carries a prefix per build; the image checks ran inside it
        assert f"[{env}] ==> amazon-ebs.app:" in table
        assert "5 passed in" in table  # packer/tests/test_image.py: the AWS agents' configuration too
        # the team's repository, not the sample app, said before the build
        repo = FIXTURES / f"{run['app']}.git"
        assert f"[{env}] baking app_source_repo={repo} ({repo}, mounted read-only into the build host)" in table
        assert "bundled sample app" not in table


def test_amis_are_tagged_with_their_origin(baked: dict[str, object], local_cloud: server.Endpoint) -> None:
    ec2 = client(local_cloud.url, "ec2")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    for env, entry in baked["report"].items():  # type: ignore[attr-defined]
        image = ec2.describe_images(ImageIds=[entry["ami_id"]])["Images"][0]
        tags = {t["Key"]: t["Value"] for t in image["Tags"]}
        assert tags["Environment"] == env and tags["validated"] == "true" and tags["Project"] == "nodestack"
        assert tags["GitRevision"].startswith(head)
        # dev's Express has nodejs_version auto: its .nvmrc names v22.11.0, re-tagged over Packer's "auto";
        # prod's app runs the inventory's pinned version
        assert tags["NodejsVersion"] == "22.11.0" and entry["nodejs_version"] == "22.11.0"
        assert tags["AppRevision"] == "v1"
        # the commit v1 names, resolved in preflight and checked out by the build (what promote compares)
        repo = FIXTURES / f"{baked['runs'][env]['app']}.git"  # type: ignore[index]
        commit = subprocess.run(["git", f"--git-dir={repo}", "rev-parse", "v1^{commit}"], capture_output=True,
                                text=True, check=True).stdout.strip()
        assert tags["AppCommit"] == commit and len(commit) == 40
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
    skipped = [line for line in seen if "StrictHostKeyChecking=no" in line]
    assert not skipped, "an SSH command skipped the host key check"
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


def app_answer(container: str, timeout_s: float) -> dict[str, object] | None:
    """What the app answers on / inside the container, asked until it answers."""
    probe = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:3000/', timeout=3).read().decode())"
    deadline = time.monotonic() + timeout_s
    while (result := podman("exec", container, "python3", "-c", probe, check=False)).returncode != 0:
        if time.monotonic() > deadline:
            return None
        time.sleep(1)
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_local_images_serve_the_team_app_after_boot(baked: dict[str, object], local_cloud: server.Endpoint) -> None:
    for env, run in baked["runs"].items():  # type: ignore[attr-defined]
        name = f"nodestack-test-boot-{env}"
        # the inventories read SSM at start; no instance profile here (test_data_plane reads it)
        config_unit = settings.load(env, local=True).app.config_unit
        assert config_unit, f"{env}: the inventory's app reads no configuration"
        podman("run", "-d", "--name", name, "--systemd=always", *validate.empty_configuration(config_unit),
               ami_image(str(local_cloud.port), run["entry"]["ami_id"]), "/sbin/init")
        try:
            answer = app_answer(name, 90)
            assert answer is not None, f"{env}: the app did not answer / after boot"
            assert answer == TEAM_APPS[run["app"]][1], env
            mode = podman("exec", name, "grep", "^AUTO_START_MODE=", "/etc/default/nodeapp").stdout.strip()
            assert mode == f"AUTO_START_MODE={'pull' if env == 'dev' else 'baked'}"
        finally:
            podman("rm", "-f", "-t", "0", name, check=False)


def test_no_build_container_or_key_pair_left(baked: dict[str, object], local_cloud: server.Endpoint) -> None:
    # this module's builds (another module may be baking on its own cloud meanwhile)
    builds = {entry["build_name"] for entry in baked["report"].values()}  # type: ignore[attr-defined]
    assert builds and not builds & set(podman("ps", "-a", "--format", "{{.Names}}").stdout.split())
    pairs = client(local_cloud.url, "ec2").describe_key_pairs()["KeyPairs"]
    assert not [p for p in pairs if p["KeyName"].startswith("nodestack-bake-")]


def test_broken_bake_promotes_nothing(baked: dict[str, object], bake_env: dict[str, str],
                                      local_cloud: server.Endpoint) -> None:
    before = baked["report"]["dev"]["ami_id"]  # type: ignore[index]
    result = cli("bake", "--env", "dev", "--app-revision", "broken", env=bake_env, timeout=900)
    assert result.returncode == 1
    assert "[dev] app_source_repo is not set in inventories/dev/group_vars/app_servers.yml: baking the bundled " \
           "sample app (app/)" in result.stdout
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


def test_a_second_bake_of_the_same_environment_is_refused_while_one_runs(
        bake_env: dict[str, str], local_cloud: server.Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODESTACK_STATE_DIR", bake_env["NODESTACK_STATE_DIR"])
    ec2 = client(local_cloud.url, "ec2")
    pairs = {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    with job.env_lock("prod"):  # as a running bake of prod holds it
        result = cli("bake", "--env", "prod", env=bake_env, timeout=300)
    assert result.returncode == 1 and "a bake of prod is already running" in result.stderr
    assert {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]} == pairs  # nothing launched
    with job.env_lock("prod"):  # released with its holder: the next bake goes ahead
        pass


def test_a_build_step_and_yarn_plug_n_play_bake_and_boot_too(baked: dict[str, object], bake_env: dict[str, str],
                                                             local_cloud: server.Endpoint, tmp_path: Path) -> None:
    """The other two fixture apps, after the tests above have read the first pair's AMIs: the
    bake's own validation boots each image and asks / (the health check)."""
    runs = bake_team_apps({"dev": "typescript", "prod": "berry"}, bake_env, tmp_path)
    for run in runs.values():
        result, entry = run["result"], run["entry"]
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]  # type: ignore[attr-defined]
        assert entry["validation"] == "passed" and entry["promoted"], entry  # type: ignore[index]
        podman("rmi", "-f", ami_image(str(local_cloud.port), entry["ami_id"]), check=False)  # type: ignore[index]
