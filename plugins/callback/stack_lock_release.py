"""Releases the stack's run lock (roles/stack/library/stack_lock.py) when ansible-playbook ends,
failed or not: a failed task stops the later plays, so a release task at the end of a playbook
would not run, and the next run would wait for the lock to expire. Ansible sends callbacks no end
of an interrupted run: an exit handler releases the lock on Ctrl-C, a SIGTERM handler before
Ansible's own: it stops the workers first (no task may change the stack once another run can take
the lock), then releases with short timeouts and no retries (a signal handler must not hang).
Only a killed run (SIGKILL) keeps it: the module takes such a lock over on the same machine, or it
expires.

Enabled in ansible.cfg (callbacks_enabled). It connects as the module did (region, endpoint,
profile; keys from the environment), and deletes the lock only if it still names this run
(nodestack.ssm_lock.release, the protocol the module uses).
"""

from __future__ import annotations

import atexit
import importlib.util
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ansible.plugins.callback import CallbackBase

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # no AWS libraries: no stack run took a lock either
    boto3 = None

_MODULE_UTILS = Path(__file__).resolve().parents[2] / "roles" / "stack" / "module_utils" / "ssm_lock.py"
_WORKERS_JOIN_S = 5.0  # how long SIGTERM waits for the workers it stopped


def _protocol() -> ModuleType | None:
    """The lock's protocol, as the module's: nodestack's (ansible-playbook runs from the project's
    venv), else the role's module_utils copy next to this plugin."""
    try:
        from nodestack import ssm_lock as protocol
    except ImportError:
        spec = importlib.util.spec_from_file_location("stack_lock_release_ssm_lock", _MODULE_UTILS)
        if spec is None or spec.loader is None:
            return None
        protocol = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = protocol  # its dataclasses look their module up there
        try:
            spec.loader.exec_module(protocol)
        except OSError:
            return None
    return protocol


ssm_lock = _protocol()

DOCUMENTATION = r"""
name: stack_lock_release
type: aggregate
short_description: Release the stack's run lock when the run ends
description:
  - Deletes the SSM parameter the stack_lock module took for this run, after the last play or a failure.
requirements: [boto3]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "stack_lock_release"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._held: dict[str, dict[str, Any]] = {}  # lock name -> the module's arguments
        self._pid = os.getpid()

    def v2_runner_on_ok(self, result: Any) -> None:
        if not result._task.action.endswith("stack_lock"):
            return
        args = result._result.get("invocation", {}).get("module_args", {})
        if result._result.get("taken"):
            if not self._held:
                self._pid = os.getpid()  # forked workers inherit the handler: only this process releases
                atexit.register(self._release_all)
                # Ansible's SIGTERM handler signals its workers, then kills its own process with the
                # signal again, which runs no exit handler: stop the workers and release first
                ansible_term = signal.getsignal(signal.SIGTERM)

                def on_term(signum: int, frame: Any) -> None:
                    _stop_workers(signum)
                    self._release_all(interrupted=True)
                    if callable(ansible_term):
                        ansible_term(signum, frame)
                    else:
                        signal.signal(signum, signal.SIG_DFL)
                        os.kill(os.getpid(), signum)
                try:
                    signal.signal(signal.SIGTERM, on_term)
                except ValueError:  # not the main thread: Ctrl-C still releases
                    pass
            self._held[args["name"]] = args

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._release_all()

    def _release_all(self, interrupted: bool = False) -> None:
        if os.getpid() != self._pid:
            return
        while self._held:
            name, args = self._held.popitem()
            self._release(name, args, interrupted)

    def _release(self, name: str, args: dict[str, Any], interrupted: bool) -> None:
        if boto3 is None:
            return
        if ssm_lock is None:
            self._warn(name, ImportError(f"neither nodestack nor {_MODULE_UTILS} is importable"))
            return
        # keys come from the environment or the profile, as the module's: never ask IMDS for some
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        # in a signal handler: one short try (an unreleased lock expires), not minutes of retries
        config = Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 1}) if interrupted else None
        try:
            session = boto3.Session(profile_name=args.get("profile") or None, region_name=args.get("region"))
            ssm = session.client("ssm", endpoint_url=args.get("endpoint_url") or None, config=config)
            if ssm_lock.release(ssm, name, args["run"]):
                self._display.display(f"Released the stack's lock {name}")
        except (BotoCoreError, ClientError) as err:
            self._warn(name, err)

    def _warn(self, name: str, err: Exception) -> None:
        self._display.warning(f"Could not release the stack's lock {name} ({err}): it expires by itself; the next "
                              "run on this machine takes it over, or run with -e stack_lock_take_over=true")


def _stop_workers(signum: int) -> None:
    """Signal Ansible's worker processes (multiprocessing children, also under Mitogen's strategy,
    whose own connection processes are os.fork()ed and not among them) and wait briefly for them."""
    workers = multiprocessing.active_children()
    for worker in workers:
        if worker.pid:
            try:
                os.kill(worker.pid, signum)  # a worker passes it on to the task's process group
            except ProcessLookupError:
                pass
    for worker in workers:
        worker.join(_WORKERS_JOIN_S / max(len(workers), 1))
