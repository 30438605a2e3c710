"""Releases the stack's run lock (roles/stack/library/stack_lock.py) when ansible-playbook ends,
failed or not: a failed task stops the later plays, so a release task at the end of a playbook
would not run, and the next run would wait for the lock to expire. Ansible sends callbacks no end
of an interrupted run: an exit handler releases the lock on Ctrl-C, a SIGTERM handler before
Ansible's own.
Only a killed run (SIGKILL) keeps it: the module takes such a lock over on the same machine, or it
expires.

Enabled in ansible.cfg (callbacks_enabled). It connects as the module did (region, endpoint,
profile; keys from the environment), and deletes the lock only if it still names this run
(nodestack.ssm_lock.release, the protocol the module uses).
"""

from __future__ import annotations

import atexit
import os
import signal
from typing import Any

from ansible.plugins.callback import CallbackBase

try:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # no AWS libraries: no stack run took a lock either
    boto3 = None

try:  # the lock's protocol, as the module's (ansible-playbook runs from the project's venv)
    from nodestack import ssm_lock
except ImportError:
    ssm_lock = None  # type: ignore[assignment]

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
                # Ansible's SIGTERM handler stops its workers, then kills its own process with the
                # signal again, which runs no exit handler: release first, then let it go on
                ansible_term = signal.getsignal(signal.SIGTERM)

                def on_term(signum: int, frame: Any) -> None:
                    self._release_all()
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

    def _release_all(self) -> None:
        if os.getpid() != self._pid:
            return
        while self._held:
            name, args = self._held.popitem()
            self._release(name, args)

    def _release(self, name: str, args: dict[str, Any]) -> None:
        if boto3 is None:
            return
        if ssm_lock is None:
            self._warn(name, ImportError("nodestack is not importable: run ansible-playbook from the project's venv"))
            return
        # keys come from the environment or the profile, as the module's: never ask IMDS for some
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        try:
            session = boto3.Session(profile_name=args.get("profile") or None, region_name=args.get("region"))
            ssm = session.client("ssm", endpoint_url=args.get("endpoint_url") or None)
            if ssm_lock.release(ssm, name, args["run"]):
                self._display.display(f"Released the stack's lock {name}")
        except (BotoCoreError, ClientError) as err:
            self._warn(name, err)

    def _warn(self, name: str, err: Exception) -> None:
        self._display.warning(f"Could not release the stack's lock {name} ({err}): it expires by itself; the next "
                              "run on this machine takes it over, or run with -e stack_lock_take_over=true")
