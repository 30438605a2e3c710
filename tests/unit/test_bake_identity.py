"""A bake asks STS who its caller is once: preflight keeps the answer on the target, and the
permission check and each environment's lock read it from there. moto in this process; Packer,
Podman, the repository and Packer's validation stand aside (other tests run them)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from typing import Any

import pytest

from nodestack import names, ssm_lock
from nodestack.bake import build_host, job, packer_build, run_lock, settings, source_check
from nodestack.bake.target import Target
from nodestack.local_cloud import fix_simulate_principal_policy

REGION = "us-east-1"
MOTO_CALLER = "arn:aws:sts::123456789012:user/moto"


@pytest.fixture
def asked(moto_in_process: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> list[str]:
    """Every GetCallerIdentity the bake's clients make."""
    fix_simulate_principal_policy.apply()
    calls: list[str] = []
    real = Target.client

    def client(self: Target, service: str, region: str = "") -> Any:
        made = real(self, service, region)
        made.meta.events.register("before-call.sts.GetCallerIdentity", lambda **_: calls.append(service))
        return made

    monkeypatch.setattr(Target, "client", client)
    monkeypatch.setenv("NODESTACK_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(ssm_lock, "_settle", lambda: None)
    monkeypatch.setattr(job, "resolve_target", lambda local: Target(True, REGION, {}))
    monkeypatch.setattr(job, "podman", lambda *args, **kw: subprocess.CompletedProcess(args, 0, "", ""))
    # Podman's storage: as roomy as the test says, whatever this machine's disk holds
    monkeypatch.setattr(build_host, "podman",
                        lambda *args, **kw: subprocess.CompletedProcess(args, 0, f"{tmp_path}\n", ""))
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(build_host.shutil, "disk_usage", lambda path: usage._replace(free=100_000_000_000))
    monkeypatch.setattr(packer_build, "validate", lambda *args: None)
    monkeypatch.setattr(job, "packer_variables", lambda *args: {})
    monkeypatch.setattr(source_check, "pin", lambda s: (s.pinned("c" * 40), "pinned"))
    return calls


def test_preflight_asks_once_and_the_check_and_both_locks_reuse_it(asked: list[str],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    target, loaded = job.preflight(["dev", "prod"], True, 1, {})
    assert target.caller is not None and target.caller.arn == MOTO_CALLER and target.caller.account == "123456789012"
    assert f"permissions of {MOTO_CALLER}: not checked" in capsys.readouterr().out  # the check ran, as that caller
    for env in loaded:
        with run_lock.bake_lock(target, "nodeapp", env, 60, False) as lock:
            held = ssm_lock.read(lock.ssm, names.bake_lock_parameter("nodeapp", env))
            assert held and held["holder"] == MOTO_CALLER
    assert asked == ["sts"]  # preflight's question, and no other


def test_a_target_not_identified_asks_when_asked(asked: list[str]) -> None:
    target = Target(True, REGION, {})
    assert target.identity().arn == MOTO_CALLER and target.caller is None
    assert target.identified().identity().arn == MOTO_CALLER
    assert asked == ["sts", "sts"]


def test_preflight_refuses_a_local_bake_without_room_for_its_images(asked: list[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(build_host.shutil, "disk_usage", lambda path: usage._replace(free=4_000_000_000))  # of 100
    with pytest.raises(job.BakeError, match=r"4.0 GB free; .* \(5.0 GB\)"):
        job.preflight(["dev", "prod"], True, 1, {})
    job.preflight(["dev"], True, 1, {})  # one environment fits


def test_preflight_refuses_a_build_subnet_the_account_lacks_naming_its_file(asked: list[str],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    load = settings.load
    monkeypatch.setattr(settings, "load", lambda *args: replace(load(*args), subnet_id="subnet-0123456789abcdef0"))
    with pytest.raises(job.BakeError, match=r"\[dev\] subnet_id 'subnet-0123456789abcdef0' of .*dev\.pkrvars\.hcl: "
                                            r".*InvalidSubnetID\.NotFound"):
        job.preflight(["dev"], True, 1, {})
