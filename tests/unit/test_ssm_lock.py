"""The run lock's protocol (nodestack.ssm_lock), shared by the stack's lock and the bake's: taken
with a conditional write, refused while a live run holds it, taken over when its holder is gone,
released only by its own run; against moto's SSM in this process."""

from __future__ import annotations

import datetime
import json
import os
import socket
from typing import Any

import boto3
import pytest

from nodestack import names, ssm_lock
from nodestack.bake import run_lock
from nodestack.bake.target import BakeError

NAME = "/nodeapp/dev/lock/bake"


@pytest.fixture
def ssm(moto_in_process: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(ssm_lock, "_settle", lambda: None)  # no racing take-over here: no need to wait
    return boto3.client("ssm", region_name="us-east-1")


def mine(run: str = "this-run", minutes: int = 90) -> dict[str, Any]:
    return ssm_lock.value(run, "arn:aws:iam::123456789012:user/ci", os.getpid(), minutes, ssm_lock.utc_now())


def put(ssm: Any, **fields: Any) -> dict[str, Any]:
    held = {**mine("earlier-run"), **fields}
    ssm.put_parameter(Name=NAME, Value=json.dumps(held), Type="String", Overwrite=True)
    return held


def take(ssm: Any, take_over: bool = False, check_mode: bool = False) -> ssm_lock.Outcome:
    return ssm_lock.take(ssm, NAME, mine(), take_over, "test", check_mode)


def test_a_free_lock_is_taken_re_entrantly_and_released_by_its_run_only(ssm: Any) -> None:
    outcome = take(ssm)
    assert outcome.taken and not outcome.taken_over and ssm_lock.read(ssm, NAME) == outcome.lock
    assert take(ssm).taken  # the same run again
    assert not ssm_lock.release(ssm, NAME, "another-run") and ssm_lock.read(ssm, NAME) is not None
    assert ssm_lock.release(ssm, NAME, "this-run") and ssm_lock.read(ssm, NAME) is None
    assert not ssm_lock.release(ssm, NAME, "this-run")  # gone: nothing to release


@pytest.mark.parametrize("fields", [
    {"host": "another-machine"},  # live elsewhere
    {"boot": "another-boot", "pid": 2 ** 22 + 1},  # this hostname, another boot: not this machine's process
    {},  # this process: alive
    # another PID namespace (a container on this host: same boot id, and hostname with host networking)
    {"pidns": "pid:[1]", "pid": 2 ** 22 + 1},
    {"pidns": None, "started": None, "pid": 2 ** 22 + 1},  # a lock of an older version: only expiry proves
    {"started": None, "pid": 2 ** 22 + 1},  # no start time recorded: a gone pid proves nothing
])
def test_a_live_holder_refuses_and_keeps_its_lock(ssm: Any, fields: dict[str, Any]) -> None:
    held = put(ssm, **fields)
    with pytest.raises(ssm_lock.Held) as refused:
        take(ssm)
    assert refused.value.held == held
    assert str(refused.value) == (f"{NAME} is held by {held['holder']} ({held['who']}, process {held['pid']}, run "
                                  f"earlier-run) since {held['since']}, until {held['until']}")
    assert ssm_lock.read(ssm, NAME) == held
    with pytest.raises(ssm_lock.Held):  # check mode refuses as well: the caller warns
        take(ssm, check_mode=True)
    forced = take(ssm, take_over=True)
    assert forced.taken and forced.taken_over == held and forced.why == ""


@pytest.mark.parametrize(("fields", "why"), [
    ({"host": "another-machine", "until": "2026-01-01T00:00:00+00:00"}, "expired at 2026-01-01T00:00:00+00:00"),
    ({"until": "soon"}, "its value is not a lock of this project (unreadable)"),
    ({"host": socket.gethostname(), "pid": 2 ** 22 + 1}, f"its process {2 ** 22 + 1} on this machine has ended"),
    # this process's pid, reused: another start time
    # THIS: the test's pid, filled in by the test (parameter ids must be equal in every xdist worker)
    ({"started": "1"}, "its process THIS on this machine has ended"),
])
def test_a_stale_lock_is_taken_over_saying_why(ssm: Any, fields: dict[str, Any], why: str) -> None:
    held = put(ssm, **fields)
    outcome = take(ssm)
    assert outcome.taken and outcome.taken_over == held and outcome.why == why.replace("THIS", str(os.getpid()))
    assert ssm_lock.read(ssm, NAME)["run"] == "this-run"  # type: ignore[index]


def test_a_value_of_no_lock_is_stale(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value="not json", Type="String")
    assert take(ssm).why == "its value is not a lock of this project (unreadable)"


def test_check_mode_writes_nothing(ssm: Any) -> None:
    outcome = take(ssm, check_mode=True)
    assert not outcome.taken and ssm_lock.read(ssm, NAME) is None
    put(ssm, until="2026-01-01T00:00:00+00:00")
    assert take(ssm, check_mode=True).why.startswith("expired")
    assert ssm_lock.read(ssm, NAME)["run"] == "earlier-run"  # type: ignore[index]


def test_a_run_that_loses_the_race_is_refused(ssm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    put(ssm)  # created by another run between this run's read (nothing) and its write
    reads = [None]
    real = ssm_lock.read
    monkeypatch.setattr(ssm_lock, "read", lambda client, name: reads.pop() if reads else real(client, name))
    with pytest.raises(ssm_lock.Raced, match=f"{NAME} was taken by another run just now: .* run earlier-run"):
        take(ssm)


def test_the_bake_lock_is_named_by_the_naming_map_and_outlasts_the_bake() -> None:
    assert names.bake_lock_parameter("nodeapp", "dev") == NAME
    assert names.bake_lock_parameter("nodeapp", "*") == "/nodeapp/*/lock/bake"
    assert run_lock.lock_minutes(None, 1800) == 90  # Packer's timeout and the leftovers' margin
    assert run_lock.lock_minutes(120, 1800) == 120
    # shorter than the default, validation and promotion would outlive it
    with pytest.raises(BakeError, match=r"--lock-minutes 89 is invalid: .* after it \(at least 90\)"):
        run_lock.lock_minutes(89, 1800)


def test_the_value_names_this_machine_and_process() -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    value = ssm_lock.value("r", "arn", 42, 90, now)
    assert value["host"] == socket.gethostname() and value["who"].endswith(f"@{socket.gethostname()}")
    assert value["boot"] == ssm_lock.boot_id() and value["pid"] == 42 and value["started"] == ssm_lock.start_time(42)
    assert value["pidns"] == os.readlink("/proc/self/ns/pid") and value["pidns"].startswith("pid:[")
    assert ssm_lock.start_time(os.getpid()).isdigit() and ssm_lock.start_time(2 ** 22 + 1) == ""
    assert (value["since"], value["until"]) == ("2030-01-01T00:00:00+00:00", "2030-01-01T01:30:00+00:00")
