"""What a killed bake leaves is removed by the environment's next bake, and nothing else: the
run's build instance (terminated and waited for before its security group goes), the bake's
security group of it, its key pair, its build container and boot probe, its key files. A
resource is the next bake's only with this project's, app's and environment's tags and a run
that is provably over: past its expiry, or on this machine under a lock nobody holds."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from nodestack.bake import build_group, job, leftovers, packer_build, run_owner, settings
from nodestack.bake.build_host import podman
from nodestack.bake.run_owner import RunOwner, run_is_over
from nodestack.bake.target import Target, packer_env
from nodestack.file_lock import take_lock
from nodestack.local_cloud import base_image

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
SOURCE_AMI = "ami-785db401"  # one of moto's bundled images


def owner(tmp_path: Path, run: str, env: str = "dev", app: str = "nodeapp", lock: str = "dev.lock",
          started: datetime = NOW, timeout_s: float = 1800) -> RunOwner:
    return RunOwner.start("nodestack", app, env, run, tmp_path / lock, timeout_s, started)


def test_a_run_is_over_past_its_expiry_or_when_nobody_holds_its_lock(tmp_path: Path) -> None:
    held, other = tmp_path / "dev.lock", tmp_path / "other" / "dev.lock"
    live = owner(tmp_path, "r1").tags()
    assert live["BakeExpires"] == "2030-01-02T04:34:05Z"  # the Packer timeout and an hour
    assert run_is_over(live, held, NOW)  # the caller holds the run's lock: that run has ended
    assert run_is_over(live, tmp_path / "prod.lock", NOW + timedelta(hours=2))  # expired
    elsewhere = {**live, "BakeHost": f"{run_owner.machine()}:{other}"}
    assert not run_is_over(elsewhere, held, NOW), "a lock file that is gone proves nothing"
    handle = take_lock(other, lambda: None)  # another state directory's bake, running
    assert not run_is_over(elsewhere, held, NOW)
    handle.close()
    assert run_is_over(elsewhere, held, NOW)  # it ended: its lock is free
    assert not run_is_over({**live, "BakeHost": f"another-machine:{held}"}, held, NOW)
    # the same hostname after another boot, or another container of that name: not this machine
    assert not run_is_over({**live, "BakeHost": f"{socket.gethostname()}@0ther000:{held}"}, held, NOW)
    assert not run_is_over({k: v for k, v in live.items() if k != "BakeExpires"}, held, NOW + timedelta(days=9))
    assert not run_is_over({**live, "BakeExpires": "tomorrow"}, held, NOW)


def _packer_instance(ec2: Any, tags: dict[str, str]) -> tuple[str, str]:
    """A build instance as Packer 1.6.6 launches one (run_tags) into the bake's security group."""
    group = build_group.create(ec2, tags.get("BakeRun", "x"), build_group.build_vpc(ec2, ""), ["127.0.0.1/32"],
                               [{"Key": k, "Value": v} for k, v in tags.items()])
    instance = ec2.run_instances(ImageId=SOURCE_AMI, MinCount=1, MaxCount=1, SecurityGroupIds=[group],
                                 TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                     {"Key": k, "Value": v} for k, v in tags.items()]}])["Instances"][0]
    return instance["InstanceId"], group


def _key_pair(ec2: Any, name: str, tags: dict[str, str], tmp_path: Path) -> None:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ec2.import_key_pair(KeyName=name, PublicKeyMaterial=key.with_suffix(".pub").read_bytes(),
                        TagSpecifications=[{"ResourceType": "key-pair",
                                            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])


@pytest.mark.usefixtures("moto_in_process")
def test_the_sweep_removes_an_ended_runs_instance_group_and_key_pair_and_nothing_else(tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    held = tmp_path / "dev.lock"
    killed = owner(tmp_path, "nodestack-bake-dev-20300101000000-aaaaaa", started=NOW - timedelta(days=1))
    running = owner(tmp_path, "nodestack-bake-dev-20300102030000-bbbbbb", lock="elsewhere/dev.lock")
    kept = {
        "running": running.tags(),  # another state directory's bake of dev, not expired: may be running
        "other app": owner(tmp_path, "r3", app="shop", started=NOW - timedelta(days=1)).tags(),
        "other env": owner(tmp_path, "r4", env="prod", started=NOW - timedelta(days=1)).tags(),
        "no run": {"Project": "nodestack", "App": "nodeapp", "Environment": "dev"},  # a deployed app server?
    }
    (tmp_path / "elsewhere").mkdir()
    lock = take_lock(tmp_path / "elsewhere" / "dev.lock", lambda: None)
    for name, tags in kept.items():
        _packer_instance(ec2, tags)
        _key_pair(ec2, name.replace(" ", "-"), tags, tmp_path)
    instance, group = _packer_instance(ec2, killed.tags())
    # tagged as the run's, but not the bake's (another name or description): never deleted
    for name, description in (("team-ssh", build_group.GROUP_DESCRIPTION), (killed.run + "-ssh", "the team's")):
        ec2.create_security_group(GroupName=name, Description=description,
                                  TagSpecifications=[{"ResourceType": "security-group", "Tags": killed.tag_list()}])
    _key_pair(ec2, killed.run, killed.tags(), tmp_path)
    calls: list[str] = []
    ec2.meta.events.register("before-call.ec2.*", lambda model, **_: calls.append(model.name))

    sweep = leftovers.sweep_cloud(ec2, killed.scope(), held, NOW)
    lock.close()

    assert sweep.failed == []
    assert sweep.removed == [f"instance {instance} ({killed.run})", f"security group {group} ({killed.run})",
                             f"key pair {killed.run}"]
    assert ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"] == \
        "terminated"
    # the instance was gone before its security group was deleted
    assert calls.index("TerminateInstances") < calls.index("DescribeInstances", calls.index("TerminateInstances")) \
        < calls.index("DeleteSecurityGroup")
    states = [i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert states.count("running") == len(kept)
    assert {g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]} >= {
        "team-ssh", killed.run + "-ssh", running.run, "r3", "r4", "x"}
    assert {p["KeyName"] for p in ec2.describe_key_pairs()["KeyPairs"]} == {"running", "other-app", "other-env",
                                                                           "no-run"}


def _container(name: str, tags: dict[str, str]) -> dict[str, Any]:
    labels = {"io.nodestack.role": "build-host", **{f"io.nodestack.{k}": v for k, v in tags.items()}}
    return {"Names": [name], "Labels": labels}


def test_the_sweep_removes_an_ended_runs_build_container_and_boot_probe_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Podman isolated (its listing as `podman ps --format json` gives it); a real container below."""
    killed = owner(tmp_path, "nodestack-bake-dev-20300101000000-aaaaaa", started=NOW - timedelta(days=1))
    running = owner(tmp_path, "nodestack-bake-dev-20300102030000-bbbbbb", lock="elsewhere/dev.lock")
    (tmp_path / "elsewhere").mkdir()
    listed = [_container(killed.run, killed.tags()), _container(killed.run + "-boot", killed.tags()),
              # booted from the AMI's local image, which inherits the build container's labels
              _container("nodeapp-dev-i-0123", killed.tags()),
              _container(running.run, running.tags())]
    removed: list[str] = []

    def fake_podman(*args: str, **_: Any) -> subprocess.CompletedProcess[str]:
        if args[0] == "ps":
            return subprocess.CompletedProcess(args, 0, json.dumps(listed), "")
        removed.append(args[-1])
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(leftovers, "podman", fake_podman)
    with take_lock(tmp_path / "elsewhere" / "dev.lock", lambda: None):
        sweep = leftovers.sweep_containers(killed.scope(), tmp_path / "dev.lock", NOW)
    assert removed == [killed.run, killed.run + "-boot"]
    assert sweep.removed == [f"container {killed.run}", f"container {killed.run}-boot"]


@pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman")
def test_a_real_leftover_container_is_removed(tmp_path: Path) -> None:
    """A tiny container (`sleep`, no systemd) from the base image, when this machine has it."""
    if podman("image", "exists", base_image.IMAGE, check=False).returncode != 0:
        pytest.skip(f"{base_image.IMAGE} is not built here (`nodestack image build`)")
    killed = owner(tmp_path, f"nodestack-bake-dev-20300101000000-{tmp_path.name[-6:]}", app="leftover-test",
                   started=NOW - timedelta(days=1))
    podman("run", "-d", "--name", killed.run, "--label", "io.nodestack.role=build-host", *killed.label_args(),
           base_image.IMAGE, "sleep", "300")
    try:
        assert [c["Names"] for c in leftovers.build_containers(killed.scope())] == [[killed.run]]
        sweep = leftovers.sweep_containers(killed.scope(), tmp_path / "dev.lock", NOW)
        assert sweep.removed == [f"container {killed.run}"]
        assert podman("container", "exists", killed.run, check=False).returncode == 1
    finally:
        podman("rm", "-f", "-t", "0", killed.run, check=False)


def test_a_killed_builds_key_files_are_removed_its_log_kept(tmp_path: Path) -> None:
    workdir, other = tmp_path / "bake" / "dev-20300101000000", tmp_path / "bake" / "prod-20300101000000"
    scratch = tmp_path / "nodestack-bake-dev-20300101000000-aaaaaa-x1y2"
    for directory in (workdir, other, scratch):
        directory.mkdir(parents=True)
        (directory / "build_key").write_text("private")
    (workdir / "packer.log").write_text("log")
    sweep = leftovers.sweep_key_files(tmp_path, "nodestack", "dev")
    assert not (workdir / "build_key").exists() and (workdir / "packer.log").exists()
    assert (other / "build_key").exists() and not scratch.exists()
    assert sweep.removed == [f"file {workdir / 'build_key'}", f"directory {scratch}"]


def test_the_template_takes_the_runs_tags() -> None:
    """`packer validate` with the run's variables (an undeclared one would fail it), as preflight runs it."""
    target = Target(True, "us-east-1", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "testing",
                                        "AWS_SECRET_ACCESS_KEY": "testing"})
    pinned = settings.load("dev", True, {}).pinned("0" * 40)  # preflight resolves the version to its commit
    variables = job.packer_variables(target, pinned, Path("/nonexistent"), "20300101000000")
    variables.update(owner(Path("/nonexistent"), "nodestack-bake-dev-1").packer_variables())
    assert set(variables) >= {"bake_run", "bake_host", "bake_expires"}
    packer_build.validate(settings.var_file("dev"), {**variables, "security_group_id": job.PREFLIGHT_GROUP},
                          packer_env(target))


def test_the_run_tags_name_the_project_app_and_environment(tmp_path: Path) -> None:
    tags = owner(tmp_path, "nodestack-bake-dev-1").tags()
    assert {k: tags[k] for k in run_owner.SCOPE_TAGS} == {"Project": "nodestack", "App": "nodeapp",
                                                           "Environment": "dev"}
    assert tags["BakeHost"] == f"{run_owner.machine()}:{(tmp_path / 'dev.lock').resolve()}"
    assert run_owner.machine().startswith(f"{socket.gethostname()}@")  # this boot of this machine


@pytest.mark.usefixtures("moto_in_process")
def test_the_next_bake_sweeps_under_its_lock_and_says_what_it_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NODESTACK_STATE_DIR", str(tmp_path))
    ec2 = boto3.client("ec2", region_name="us-east-1")
    # yesterday's killed run of dev, from this state directory (its lock is the next bake's)
    killed = owner(tmp_path / "bake", "nodestack-bake-dev-20300101000000-aaaaaa")
    instance, group = _packer_instance(ec2, killed.tags())

    def stop_after_the_sweep(*args: Any) -> dict[str, str]:
        raise job.BakeError("stopped here by the test")

    monkeypatch.setattr(job, "packer_variables", stop_after_the_sweep)
    env_settings = SimpleNamespace(env="dev", app_name="nodeapp", nodejs_version="22.11.0")
    result = job.bake_env(Target(False, "us-east-1", {}), env_settings, 5, False, 1800)  # type: ignore[arg-type]
    assert result.error == "stopped here by the test"
    assert result.leftovers_removed == [f"instance {instance} ({killed.run})",
                                        f"security group {group} ({killed.run})"]
    assert f"[dev] removed what earlier bakes of dev left: instance {instance} ({killed.run}); security group " \
        in capsys.readouterr().out
