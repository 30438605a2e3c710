"""The callback plugins/callback/stack_lock_release.py in this process: on SIGTERM it stops the
workers before it releases the lock, then hands over to Ansible's handler; without nodestack it
uses the role's module_utils copy of the protocol."""

from __future__ import annotations

import atexit
import importlib.util
import multiprocessing
import signal
import sys
import time
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.conftest import REPO

CALLBACK = REPO / "plugins" / "callback" / "stack_lock_release.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stack_lock_release_under_test", CALLBACK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_nodestack_the_protocol_comes_from_the_roles_module_utils(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nodestack", None)  # `from nodestack import ...` raises ImportError
    monkeypatch.setitem(sys.modules, "stack_lock_release_ssm_lock", None)  # dropped again afterwards
    protocol = load().ssm_lock
    assert protocol is not None and protocol.__file__ == str(REPO / "roles/stack/module_utils/ssm_lock.py")
    assert callable(protocol.release)


def test_sigterm_stops_the_workers_then_releases_then_lets_ansible_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin, steps = load(), []
    monkeypatch.setattr(plugin, "_stop_workers", lambda signum: steps.append("workers"), raising=False)
    monkeypatch.setattr(plugin.CallbackModule, "_release",
                        lambda self, name, args, interrupted=False: steps.append(f"release interrupted={interrupted}"))
    before = signal.signal(signal.SIGTERM, lambda signum, frame: steps.append("ansible"))
    callback = plugin.CallbackModule()
    try:
        result: Any = SimpleNamespace(_task=SimpleNamespace(action="stack_lock"), _result={
            "taken": True, "invocation": {"module_args": {"name": "/nodeapp/local/lock/stack", "run": "r"}}})
        callback.v2_runner_on_ok(result)
        on_term = signal.getsignal(signal.SIGTERM)
        assert callable(on_term)
        on_term(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, before)
        atexit.unregister(callback._release_all)
    assert steps == ["workers", "release interrupted=True", "ansible"]


def test_the_workers_are_stopped_and_waited_for() -> None:
    worker = multiprocessing.Process(target=time.sleep, args=(60,))
    worker.start()
    load()._stop_workers(signal.SIGTERM)
    assert not worker.is_alive() and worker.exitcode == -signal.SIGTERM
