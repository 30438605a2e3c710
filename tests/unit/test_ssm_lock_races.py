"""Runs racing for one stale lock (nodestack.ssm_lock): SSM has no compare-and-swap, so a
take-over deletes only the value it judged stale and checks, after settling, that the lock it
created is still its own. Each test lets another run act between two of this run's calls."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from nodestack import ssm_lock

NAME = "/nodeapp/dev/lock/stack"
EXPIRED = "2026-01-01T00:00:00+00:00"


class Interleaved:
    """An SSM client whose first reads answer what its run read earlier (`reads`), and which
    lets another run act (`after_create`) just after its own first create."""

    def __init__(self, ssm: Any, reads: list[dict[str, Any]], after_create: Callable[[], Any] | None = None) -> None:
        self._ssm, self._reads, self._after_create = ssm, reads, after_create
        self.exceptions = ssm.exceptions

    def get_parameter(self, **kwargs: Any) -> dict[str, Any]:
        if self._reads:
            return {"Parameter": {"Value": json.dumps(self._reads.pop(0))}}
        return dict(self._ssm.get_parameter(**kwargs))

    def put_parameter(self, **kwargs: Any) -> Any:
        created = self._ssm.put_parameter(**kwargs)
        if self._after_create:
            act, self._after_create = self._after_create, None
            act()
        return created

    def delete_parameter(self, **kwargs: Any) -> Any:
        return self._ssm.delete_parameter(**kwargs)


@pytest.fixture
def ssm(moto_in_process: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    # the other run acts at a chosen call instead
    monkeypatch.setattr(ssm_lock, "_settle", lambda: None, raising=False)
    return boto3.client("ssm", region_name="us-east-1")


def lock(run: str, **fields: Any) -> dict[str, Any]:
    return {**ssm_lock.value(run, "arn:aws:iam::123456789012:user/ci", os.getpid(), 90, ssm_lock.utc_now()),
            **fields}


def put_stale(ssm: Any) -> dict[str, Any]:
    stale = lock("dead-run", until=EXPIRED)
    ssm.put_parameter(Name=NAME, Value=json.dumps(stale), Type="String")
    return stale


def take(client: Any, run: str, take_over: bool = False) -> ssm_lock.Outcome | ssm_lock.Raced:
    try:
        return ssm_lock.take(client, NAME, lock(run), take_over, "test")
    except ssm_lock.Raced as raced:
        return raced


def test_a_run_that_read_the_stale_lock_before_another_took_it_over_does_not_delete_the_new_one(ssm: Any) -> None:
    stale = put_stale(ssm)
    outcomes: dict[str, Any] = {}
    # B read the stale lock before A replaced it, and goes on once A has created its own
    a = Interleaved(ssm, [], after_create=lambda: outcomes.update(b=take(Interleaved(ssm, [stale]), "run-b")))
    outcomes["a"] = take(a, "run-a")
    assert isinstance(outcomes["a"], ssm_lock.Outcome) and outcomes["a"].taken
    assert isinstance(outcomes["b"], ssm_lock.Raced) and "run run-a" in str(outcomes["b"])
    assert ssm_lock.read(ssm, NAME)["run"] == "run-a"  # type: ignore[index]


def test_of_two_take_overs_that_both_deleted_only_the_last_one_holds(ssm: Any) -> None:
    stale = put_stale(ssm)
    outcomes: dict[str, Any] = {}
    # B re-read the stale lock too before A deleted it: B deletes A's new lock and creates its own
    a = Interleaved(ssm, [], after_create=lambda: outcomes.update(b=take(Interleaved(ssm, [stale, stale]), "run-b")))
    outcomes["a"] = take(a, "run-a")
    assert isinstance(outcomes["b"], ssm_lock.Outcome) and outcomes["b"].taken
    assert isinstance(outcomes["a"], ssm_lock.Raced) and "run run-b" in str(outcomes["a"])
    assert ssm_lock.read(ssm, NAME)["run"] == "run-b"  # type: ignore[index]


def test_a_release_that_deletes_a_forced_take_over_leaves_nobody_believing_it_holds(
        ssm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    held = lock("run-a")
    ssm.put_parameter(Name=NAME, Value=json.dumps(held), Type="String")
    # A's release read its own lock before C forced it over; its delete lands during C's settle
    monkeypatch.setattr(ssm_lock, "_settle", lambda: ssm_lock.release(Interleaved(ssm, [held]), NAME, "run-a"),
                        raising=False)
    outcome = take(ssm, "run-c", take_over=True)
    assert isinstance(outcome, ssm_lock.Raced) and "released or taken over by another run" in str(outcome)
    assert ssm_lock.read(ssm, NAME) is None
