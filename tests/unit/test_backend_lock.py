"""API requests and the data plane's changes to moto's backends never interleave: a request
must not see an Auto Scaling group between "instance detached" and "replacement launched"."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nodestack.local_cloud import data_plane, fix_instance_refresh
from nodestack.local_cloud.backend_lock import BACKENDS, serialized


def _held_elsewhere() -> bool:
    """True when another thread holds BACKENDS (an RLock lets its owner re-enter)."""
    result: list[bool] = []

    def probe() -> None:
        got = BACKENDS.acquire(blocking=False)
        if got:
            BACKENDS.release()
        result.append(not got)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return result[0]


def test_a_request_runs_with_the_backends_locked() -> None:
    seen: list[bool] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(_held_elsewhere())
        return [b"ok"]

    assert serialized(app)({}, lambda *a: None) == [b"ok"]
    assert seen == [True]
    assert not _held_elsewhere()


class _NoContainers:
    def has_image(self, ami_id: str) -> bool:
        return False

    def containers(self) -> dict[str, Any]:
        return {}


class _NoProxy:
    def apply(self, *args: Any) -> None:
        pass

    def health(self) -> dict[tuple[str, str], Any]:
        return {}


def test_the_data_plane_changes_auto_scaling_with_the_backends_locked(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, bool] = {}

    def record(name: str) -> Callable[..., None]:
        def step(*args: Any) -> None:
            seen[name] = _held_elsewhere()
        return step

    controller = data_plane.Controller(0, 0, tmp_path)
    controller.runtime = _NoContainers()  # type: ignore[assignment]
    controller.proxy = _NoProxy()  # type: ignore[assignment]
    monkeypatch.setattr(controller, "_autoscaling_health", record("health"))
    monkeypatch.setattr(fix_instance_refresh, "advance_all", record("refresh"))
    monkeypatch.setattr(data_plane.alarms, "publish_and_evaluate", record("alarms"))
    monkeypatch.setattr(controller, "_write_status", lambda *args: None)  # needs a started DNS server
    controller.tick()
    assert seen == {"health": True, "refresh": True, "alarms": True}
    assert not _held_elsewhere()
