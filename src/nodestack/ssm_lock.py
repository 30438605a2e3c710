"""One run at a time across machines: a lock held as an SSM parameter, taken with PutParameter's
Overwrite=false (a conditional write: exactly one of two racing runs creates it). The value says
who holds it (run id, caller's ARN, user@host, boot id, process), since when and until when.
A lock whose holder is gone is stale and taken over: expired, unreadable, or held by a process
of this machine (same host and boot) that no longer exists. Only the run named in it releases it.

The one implementation of the protocol, for the stack's run lock and the bake's: the Ansible
module roles/stack/library/stack_lock.py imports it as `ansible.module_utils.ssm_lock` (through
the symlink roles/stack/module_utils/ssm_lock.py, which Ansible packs into the module), the
callback plugins/callback/stack_lock_release.py and the bake (nodestack.bake.run_lock) as
`nodestack.ssm_lock`. Hence the standard library only; `ssm` is a boto3 SSM client, whose
other errors (access denied, throttling) reach the caller."""

from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Held(Exception):
    """A live run holds the lock: `held` is its value."""

    def __init__(self, name: str, held: dict[str, Any]) -> None:
        super().__init__(f"{name} is held by {describe(held)}")
        self.name, self.held = name, held


class Raced(Exception):
    """Another run created the lock between this run's read and its write."""


@dataclass(frozen=True)
class Outcome:
    taken: bool  # this run holds the lock now (never in check mode)
    lock: dict[str, Any]  # the lock after the call (in check mode, the one this run would write)
    taken_over: dict[str, Any] = field(default_factory=dict)  # the stale (or forced) lock replaced
    why: str = ""  # why that one was stale; "" when taken over by force


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def boot_id() -> str:
    """This boot of this machine: hostnames repeat (containers, CI runners), boot ids do not."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (containers)
        return str(os.getuid())


def value(run: str, holder: str, pid: int, minutes: int, now: datetime.datetime) -> dict[str, Any]:
    """The lock this run writes: held by process pid of this machine for minutes from now."""
    host = socket.gethostname()
    return {"run": run, "holder": holder, "who": f"{_user()}@{host}", "host": host, "boot": boot_id(), "pid": pid,
            "since": now.isoformat(), "until": (now + datetime.timedelta(minutes=minutes)).isoformat()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale(held: dict[str, Any], now: datetime.datetime) -> str:
    """Why the holder is gone ("" if it may still be running)."""
    try:
        until = datetime.datetime.fromisoformat(str(held.get("until", "")))
        pid = int(held.get("pid", 0) or 0)
    except ValueError:
        return "its value is not a lock of this project (unreadable)"
    if until.tzinfo is None or until <= now:
        return f"expired at {held.get('until')}"
    same_machine = held.get("host") == socket.gethostname() and held.get("boot") and held.get("boot") == boot_id()
    if same_machine and pid and not _alive(pid):
        return f"its process {pid} on this machine has ended"
    return ""


def describe(held: dict[str, Any]) -> str:
    return (f"{held.get('holder') or '?'} ({held.get('who', '?')}, process {held.get('pid', '?')}, run "
            f"{held.get('run', '?')}) since {held.get('since', '?')}, until {held.get('until', '?')}")


def read(ssm: Any, name: str) -> dict[str, Any] | None:
    """The lock's value; None when nobody holds it."""
    try:
        text = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    try:
        held = json.loads(text)
    except ValueError:
        held = None
    return held if isinstance(held, dict) else {"run": "?", "holder": str(text)[:200]}


def create(ssm: Any, name: str, lock: dict[str, Any], description: str) -> bool:
    """True if this call created the lock; False if it exists (another run was first)."""
    try:
        ssm.put_parameter(Name=name, Value=json.dumps(lock), Type="String", Overwrite=False,
                          Description=description)
    except ssm.exceptions.ParameterAlreadyExists:
        return False
    return True


def delete(ssm: Any, name: str) -> None:
    try:
        ssm.delete_parameter(Name=name)
    except ssm.exceptions.ParameterNotFound:
        pass


def take(ssm: Any, name: str, mine: dict[str, Any], take_over: bool, description: str,
         check_mode: bool = False) -> Outcome:
    """Take the lock for mine["run"] (re-entrant for the same run). Held if a live run holds it
    (unless take_over); Raced if another run took it meanwhile. In check mode nothing is written."""
    held = read(ssm, name)
    if held and held.get("run") == mine["run"]:
        return Outcome(taken=True, lock=held)
    why = stale(held, utc_now()) if held else ""
    if held and not why and not take_over:
        raise Held(name, held)
    if check_mode:
        return Outcome(taken=False, lock=mine, taken_over=held or {}, why=why)
    if held:
        delete(ssm, name)
    if not create(ssm, name, mine, description):
        raise Raced(f"{name} was taken by another run just now: {describe(read(ssm, name) or {})}")
    return Outcome(taken=True, lock=mine, taken_over=held or {}, why=why)


def release(ssm: Any, name: str, run: str) -> bool:
    """Delete the lock if run holds it; True if it did (a lock taken over from this run stays)."""
    held = read(ssm, name)
    if not held or held.get("run") != run:
        return False
    delete(ssm, name)
    return True
