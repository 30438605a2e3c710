"""A bake whose lock expired and was taken over by another stops before it promotes or prunes
(nodestack.bake.run_lock.HeldLock, called by nodestack.bake.job); against moto's SSM in this
process."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from nodestack import names, ssm_lock
from nodestack.bake import job, registry, run_lock
from nodestack.bake.target import BakeError, Target

NAME = names.bake_lock_parameter("nodeapp", "dev")
ELSEWHERE = {"run": "bake-dev-elsewhere", "holder": "arn:aws:sts::123456789012:assumed-role/bake/nightly",
             "who": "runner@ci-runner-7", "pid": 4242, "since": "2030-01-01T00:00:00+00:00",
             "until": "2030-01-01T01:30:00+00:00"}


@pytest.fixture
def ssm(moto_in_process: None) -> Any:
    return boto3.client("ssm", region_name="us-east-1")


def take_over(ssm: Any) -> None:
    """Another bake takes this bake's expired lock over."""
    ssm.put_parameter(Name=NAME, Value=json.dumps(ELSEWHERE), Type="String", Overwrite=True)


def test_require_names_the_new_holder_once_the_lock_is_not_this_bakes(ssm: Any) -> None:
    ssm_lock.create(ssm, NAME, {"run": "this-bake"}, "test")
    lock = run_lock.HeldLock(ssm, NAME, "this-bake", "dev")
    lock.require("promoting")  # still this bake's
    take_over(ssm)
    with pytest.raises(BakeError, match=f"stopped before promoting: the bake's lock {NAME} is no longer this "
                                        r"bake's \(it expired\), it is held by .*run bake-dev-elsewhere"):
        lock.require("promoting")
    ssm.delete_parameter(Name=NAME)
    with pytest.raises(BakeError, match="held by nobody"):
        lock.require("promoting")


def test_prune_stops_before_removing_anything_once_its_lock_is_taken_over(
        ssm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NODESTACK_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(job, "resolve_target", lambda local: Target(True, "us-east-1", {}))
    pruned: list[Any] = []

    def plan_while_another_takes_over(ec2: Any, autoscaling: Any, app: str, env: str, keep: int) -> Any:
        take_over(ssm)
        return argparse.Namespace(keep=[], in_use=[], remove=["ami-0123456789abcdef0"])  # a plan

    monkeypatch.setattr(registry, "plan_prune", plan_while_another_takes_over)
    monkeypatch.setattr(registry, "apply_prune", lambda ec2, plan: pruned.append(plan))
    args = argparse.Namespace(keep=1, target="local", env=["dev"], dry_run=False, take_over_lock=False)
    assert job.prune(args) == 2
    assert "stopped before pruning (nothing pruned)" in " ".join(capsys.readouterr().err.split())
    assert not pruned
    assert ssm_lock.read(ssm, NAME) == ELSEWHERE  # the new holder's lock stays
