#!/usr/bin/python
"""One run at a time per stack, across machines: a lock held as an SSM parameter, taken with
PutParameter's Overwrite=false (a conditional write: exactly one of two racing runs creates it).
The value says who holds it (the caller's ARN, user@host and the ansible-playbook process), since
when and until when. A run takes over a lock whose holder is gone: expired, or held by a process of
this machine (host, boot and PID namespace) that no longer exists (a run that was interrupted).
plugins/callback/stack_lock_release.py releases it when the run ends, failed or not (an interrupted
run's lock is taken over at once by the next run on the same machine, or expires). Taking and
releasing report changed=false: the lock lasts only as long as its run, and a run that changes
nothing else leaves nothing changed.
`taken` says whether this run holds it. The protocol is src/nodestack/ssm_lock.py, shared with the
bake's lock: Ansible packs it into this module from the role's module_utils/ (a symlink to it)."""

from __future__ import annotations

import os
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

from ansible.module_utils.ssm_lock import Held, Raced, describe, take, utc_now, value
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


def refusal(name: str, held: dict[str, Any]) -> str:
    return (f"{name} is held by {describe(held)}: another run (site.yml, rollout, blue/green or teardown) is "
            f"changing this stack. Wait for it to end; if it was killed, its lock expires at {held.get('until')}, "
            "or take the lock now with -e stack_lock_take_over=true.")


def run(module: Any) -> None:
    params, name = module.params, module.params["name"]
    mine = value(params["run"], params["holder"], playbook_pid(), params["minutes"], utc_now())
    try:
        outcome = take(module.client("ssm"), name, mine, params["take_over"],
                       "nodestack: the stack run holding this stack (stack_lock)", module.check_mode)
    except Held as held:
        if module.check_mode:
            module.warn(refusal(name, held.held))
            module.exit_json(changed=False, taken=False, lock=held.held, taken_over={})
        module.fail_json(msg=refusal(name, held.held), lock=held.held)
    except Raced as raced:
        module.fail_json(msg=f"{raced}. Wait for it to end.")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        module.fail_json_aws(err, msg=f"Could not take the lock {name}")
    if outcome.taken_over and outcome.taken:
        module.warn(f"Taking over {name} from {describe(outcome.taken_over)}: {outcome.why or 'stack_lock_take_over'}")
    taken_over = {**outcome.taken_over, "why": outcome.why or "taken over"} if outcome.taken_over else {}
    module.exit_json(changed=False, taken=outcome.taken, lock=outcome.lock,
                     taken_over=outcome.taken_over if module.check_mode else taken_over)


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
    run(module)


if __name__ == "__main__":
    main()
