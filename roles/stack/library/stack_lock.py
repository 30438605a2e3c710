#!/usr/bin/python
"""One run at a time per stack, across machines: a lock held as an SSM parameter, taken with
PutParameter's Overwrite=false (a conditional write: exactly one of two racing runs creates it).
The value says who holds it (the caller's ARN, user@host and the ansible-playbook process), since
when and until when. A run takes over a lock whose holder is gone: expired, or held by a process of
this machine that no longer exists (a run that was interrupted). plugins/callback/stack_lock_release.py
releases it when the run ends, failed or not (an interrupted run's lock is taken over at once by
the next run on the same machine, or expires). Taking and releasing report changed=false: the
lock lasts only as long as its run, and a run that changes nothing else leaves nothing changed.
`taken` says whether this run holds it."""

from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
from pathlib import Path
from typing import Any

DOCUMENTATION = r"""
module: stack_lock
short_description: Take the stack's run lock (an SSM parameter)
description:
  - Takes the lock for this run (re-entrant for the same run), refusing while another live run holds it.
  - plugins/callback/stack_lock_release.py releases it when the run ends.
  - In check mode nothing is written; a lock held by another run is reported as a warning.
options:
  name: {description: The lock's SSM parameter name., type: str, required: true}
  run: {description: This run's id (the same for every play of one ansible-playbook run)., type: str, required: true}
  holder: {description: Who runs it (the caller's ARN)., type: str, default: ""}
  minutes: {description: How long the lock holds without being released., type: int, default: 90}
  take_over:
    description: Take the lock even from a live holder (when that run is known dead).
    type: bool
    default: false
extends_documentation_fragment: [amazon.aws.common.modules, amazon.aws.region.modules, amazon.aws.boto3]
"""

RETURN = r"""
lock:
  description: The lock after this call (in check mode, the holder that would refuse this run).
  returned: always
  type: dict
  sample: {"run": "k3j2...", "holder": "arn:aws:sts::123456789012:assumed-role/deployer/ci", "who": "ci@runner",
           "host": "runner", "pid": 4242, "since": "2026-12-05T10:00:00+00:00", "until": "2026-12-05T11:30:00+00:00"}
taken:
  description: Whether this run holds the lock now (false in check mode).
  returned: always
  type: bool
taken_over:
  description: The stale lock this run replaced (empty when none).
  returned: always
  type: dict
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports it

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def playbook_pid() -> int:
    """The ansible-playbook process this module runs under (the outermost one: workers and Mitogen's
    processes are its forks); 0 where /proc cannot tell."""
    found, pid = 0, os.getppid()
    while pid > 1:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        if any(part.endswith(b"ansible-playbook") for part in cmdline[:2]):
            found = pid
        pid = int(stat.rpartition(")")[2].split()[1])
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def boot_id() -> str:
    """This boot of this machine: hostnames repeat (containers, CI runners), boot ids do not."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


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


class Lock:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.name: str = module.params["name"]
        self.client = module.client("ssm")

    def read(self) -> dict[str, Any] | None:
        try:
            value = self.client.get_parameter(Name=self.name)["Parameter"]["Value"]
        except botocore.exceptions.ClientError as err:
            if err.response["Error"]["Code"] == "ParameterNotFound":
                return None
            self.module.fail_json_aws(err, msg=f"Could not read the lock {self.name}")
        try:
            held = json.loads(value)
        except ValueError:
            held = None
        return held if isinstance(held, dict) else {"run": "?", "holder": value[:200]}

    def create(self, value: dict[str, Any]) -> bool:
        """True if this call created the lock; False if it exists (another run was first)."""
        try:
            self.client.put_parameter(Name=self.name, Value=json.dumps(value), Type="String", Overwrite=False,
                                      Description="nodestack: the stack run holding this stack (stack_lock)")
        except botocore.exceptions.ClientError as err:
            if err.response["Error"]["Code"] == "ParameterAlreadyExists":
                return False
            self.module.fail_json_aws(err, msg=f"Could not take the lock {self.name}")
        return True

    def delete(self) -> None:
        try:
            self.client.delete_parameter(Name=self.name)
        except botocore.exceptions.ClientError as err:
            if err.response["Error"]["Code"] != "ParameterNotFound":
                self.module.fail_json_aws(err, msg=f"Could not remove the stale lock {self.name}")


def describe(held: dict[str, Any]) -> str:
    return (f"{held.get('holder') or '?'} ({held.get('who', '?')}, process {held.get('pid', '?')}, run "
            f"{held.get('run', '?')}) since {held.get('since', '?')}, until {held.get('until', '?')}")


def take(module: Any, lock: Lock) -> None:
    params = module.params
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    mine = {"run": params["run"], "holder": params["holder"], "who": f"{getpass.getuser()}@{socket.gethostname()}",
            "host": socket.gethostname(), "boot": boot_id(), "pid": playbook_pid(), "since": now.isoformat(),
            "until": (now + datetime.timedelta(minutes=params["minutes"])).isoformat()}
    held = lock.read()
    if held and held.get("run") == params["run"]:
        module.exit_json(changed=False, taken=True, lock=held, taken_over={})
    why = stale(held, now) if held else ""
    if held and not why and not params["take_over"]:
        message = (f"{lock.name} is held by {describe(held)}: another run (site.yml, rollout, blue/green or "
                   "teardown) is changing this stack. Wait for it to end; if it was killed, its lock expires at "
                   f"{held.get('until')}, or take the lock now with -e stack_lock_take_over=true.")
        if module.check_mode:
            module.warn(message)
            module.exit_json(changed=False, taken=False, lock=held, taken_over={})
        module.fail_json(msg=message, lock=held)
    if module.check_mode:
        module.exit_json(changed=False, taken=False, lock=mine, taken_over=held or {})
    if held:
        module.warn(f"Taking over {lock.name} from {describe(held)}: {why or 'stack_lock_take_over'}")
        lock.delete()
    if not lock.create(mine):
        # another run took it between the read and the write (or the stale lock's replacement)
        module.fail_json(msg=f"{lock.name} was taken by another run just now: {describe(lock.read() or {})}. "
                             "Wait for it to end.")
    module.exit_json(changed=False, taken=True, lock=mine,
                     taken_over={**held, "why": why or "taken over"} if held else {})


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            run=dict(type="str", required=True),
            holder=dict(type="str", default=""),
            minutes=dict(type="int", default=90),
            take_over=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    take(module, Lock(module))


if __name__ == "__main__":
    main()
