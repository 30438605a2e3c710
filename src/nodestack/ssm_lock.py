"""One run at a time across machines: a lock held as an SSM parameter, taken with PutParameter's
Overwrite=false (a conditional write: exactly one of two racing runs creates it). The value says
who holds it (run id, caller's ARN, user@host, boot id, PID namespace, process and its start
time), since when and until when. A lock whose holder is gone is stale and taken over: expired,
unreadable, or held by a process of this machine (same host, boot and PID namespace) that no
longer exists or whose pid now names another process (another start time). Only the run named
in it releases it.

SSM has no compare-and-swap: a take-over (delete the stale lock, create one's own) re-reads
before it deletes and deletes only the value it judged stale, then, after TAKE_OVER_SETTLE_S,
re-reads and gives up (Raced) unless the lock is still its own; that also catches a release
whose read preceded a forced take-over and whose delete removed the new lock. What remains: a
run paused longer than TAKE_OVER_SETTLE_S between its re-read and its delete (or its create)
may still remove a newer lock unseen by its owner.

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
import time
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


TAKE_OVER_SETTLE_S = 1.5  # a racing take-over's delete and create land within it (normal takes skip it)


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


def pid_namespace() -> str:
    """This process's PID namespace: containers share the host's boot id (and with host
    networking its hostname) but not its pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def start_time(pid: int) -> str:
    """When process pid started (clock ticks after boot, /proc/<pid>/stat field 22): a reused
    pid has another one. "" when there is no such process (or /proc does not tell)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # the command name in () may hold spaces
    return fields[19] if len(fields) > 19 else ""  # field 22 counts from the pid (1) and name (2)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (containers)
        return str(os.getuid())


def value(run: str, holder: str, pid: int, minutes: int, now: datetime.datetime) -> dict[str, Any]:
    """The lock this run writes: held by process pid of this machine for minutes from now."""
    host = socket.gethostname()
    return {"run": run, "holder": holder, "who": f"{_user()}@{host}", "host": host, "boot": boot_id(),
            "pidns": pid_namespace(), "pid": pid, "started": start_time(pid) if pid else "",
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
    if pid and _same_pid_space(held) and _ended(pid, str(held.get("started") or "")):
        return f"its process {pid} on this machine has ended"
    return ""


def _same_pid_space(held: dict[str, Any]) -> bool:
    """Whether held's pid means the same process here: same host, boot and PID namespace. A lock
    of an older version (no namespace recorded) or a missing id never is."""
    here = {"host": socket.gethostname(), "boot": boot_id(), "pidns": pid_namespace()}
    return all(value and held.get(key) == value for key, value in here.items())


def _ended(pid: int, started: str) -> bool:
    """Whether the process that was pid (started then) is gone: no such pid, or a pid reused by a
    process of another start time. Without a recorded start time, never provably."""
    if not started:
        return False
    if not _alive(pid):
        return True
    now_started = start_time(pid)
    return bool(now_started) and now_started != started  # alive but unreadable: not proof


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
        now_held = read(ssm, name)  # delete only the lock judged stale, not one another run made since
        if now_held is not None and now_held != held:
            raise _raced(name, now_held)
        delete(ssm, name)
    if not create(ssm, name, mine, description):
        raise _raced(name, read(ssm, name))
    if held:  # another take-over of the same lock may have deleted this one: see the module's doc
        _settle()
        now_held = read(ssm, name)
        if not now_held or now_held.get("run") != mine["run"]:
            raise _raced(name, now_held)
    return Outcome(taken=True, lock=mine, taken_over=held or {}, why=why)


def _settle() -> None:
    time.sleep(TAKE_OVER_SETTLE_S)


def _raced(name: str, now_held: dict[str, Any] | None) -> Raced:
    if now_held is None:
        return Raced(f"{name} was released or taken over by another run just now")
    return Raced(f"{name} was taken by another run just now: {describe(now_held)}")


def release(ssm: Any, name: str, run: str) -> bool:
    """Delete the lock if run holds it; True if it did (a lock taken over from this run stays). A
    forced take-over between the read and the delete loses its new lock: its settle re-read
    sees that and fails (Raced), so neither run goes on believing it holds a lock nobody holds."""
    held = read(ssm, name)
    if not held or held.get("run") != run:
        return False
    delete(ssm, name)
    return True
