"""One bake of an app's environment at a time, across machines: the SSM parameter
stack__names.bake_lock_parameter (`/<app>/<env>/lock/bake`), held by the protocol of
nodestack.ssm_lock that the stack's run lock uses too. Each environment's bake takes it after
preflight and before it sweeps leftovers or launches anything, and releases it however it ends
(failed, or stopped by SIGTERM/SIGINT); a killed bake's lock expires, or is taken over at once
by the next bake on its machine (same boot and PID namespace, its process gone).

The per-machine file lock (job.env_lock) stays besides it: it refuses a second bake of this
machine at once, and the leftover sweep proves this machine's dead runs by it (run_owner.py).
The local target takes this lock too, in the local cloud's SSM: the same code path as on AWS,
so that the local rehearsal and the tests prove the lock the nightly job relies on.

A lock that expired under a live bake (a machine suspended, a clock jump) may be taken over by
another: the bake checks it still holds its lock (HeldLock.require) right before it promotes and
before it prunes, and stops otherwise."""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nodestack import names, ssm_lock
from nodestack.bake.run_owner import EXPIRY_MARGIN
from nodestack.bake.target import BakeError, Target

TAKE_OVER_FLAG = "--take-over-lock"
PRUNE_MINUTES = 60  # `nodestack prune` alone: a few calls


def lock_minutes(given: int | None, timeout_s: float) -> int:
    """The lock's expiry: by default as long as the bake's resources say it runs (its Packer
    timeout and run_owner's margin), so that when the lock expires its leftovers may go too."""
    default = math.ceil((timeout_s + EXPIRY_MARGIN.total_seconds()) / 60)
    if given is None:
        return default
    # shorter, a slow validation outlives the lock, and the bake then stops before promoting
    if given < default or given > 2880:
        raise BakeError(f"--lock-minutes {given} is invalid: the lock must outlast --timeout ({timeout_s:.0f} s) "
                        f"and the hour of validation, promotion and pruning after it (at least {default}), and hold "
                        "at most 2880 minutes; leave it out for the default (--timeout and an hour)")
    return given


def refusal(name: str, app: str, env: str, held: dict[str, object]) -> str:
    return (f"{name} is held by {ssm_lock.describe(held)}: a bake of {app} {env} is running on "
            f"{held.get('host', '?')}. Nothing was launched for {env}. Wait for it to end; if it was killed, its lock "
            f"expires at {held.get('until', '?')} (at once for the next bake on its machine), or take it now: "
            f"run again with {TAKE_OVER_FLAG}.")


@dataclass(frozen=True)
class HeldLock:
    """The bake lock this bake took."""

    ssm: Any
    name: str
    run: str
    env: str

    def require(self, step: str) -> None:
        """BakeError naming the new holder unless this bake still holds its lock: step (promoting,
        pruning) must not happen once another bake took it over."""
        try:
            held = ssm_lock.read(self.ssm, self.name)
        except (BotoCoreError, ClientError) as exc:
            raise BakeError(f"stopped before {step}: cannot read the bake's lock {self.name}: {exc}") from exc
        if not held or held.get("run") != self.run:
            holder = ssm_lock.describe(held) if held else "nobody (it expired and was deleted)"
            raise BakeError(f"stopped before {step}: the bake's lock {self.name} is no longer this bake's (it "
                            f"expired), it is held by {holder}. Run the bake of {self.env} again once that one "
                            "has ended")


@contextmanager
def bake_lock(target: Target, app: str, env: str, lock_minutes: int, take_over: bool) -> Iterator[HeldLock]:
    """Hold app's env's bake lock while inside; BakeError naming the holder and the fix when a
    live bake holds it."""
    name = names.bake_lock_parameter(app, env)
    ssm = target.client("ssm")
    run = f"bake-{env}-{secrets.token_hex(8)}"
    try:
        holder = target.identity().arn
        mine = ssm_lock.value(run, holder, os.getpid(), lock_minutes, ssm_lock.utc_now())
        outcome = ssm_lock.take(ssm, name, mine, take_over, f"nodestack: the bake of {app} {env} holding it")
    except ssm_lock.Held as exc:
        raise BakeError(refusal(name, app, env, exc.held)) from exc
    except ssm_lock.Raced as exc:
        raise BakeError(f"{exc}. Nothing was launched for {env}: wait for that bake to end.") from exc
    except (BotoCoreError, ClientError) as exc:
        raise BakeError(f"cannot take the bake's lock {name}: {exc} (the bake's policy grants it: statement "
                        "BakeLock of `nodestack policy bake`)") from exc
    if outcome.taken_over:
        print(f"[{env}] taking over the bake's lock {name} from {ssm_lock.describe(outcome.taken_over)}: "
              f"{outcome.why or TAKE_OVER_FLAG}", flush=True)
    try:
        yield HeldLock(ssm, name, run, env)
    finally:
        try:
            released = ssm_lock.release(ssm, name, run)
        except (BotoCoreError, ClientError) as exc:
            print(f"[{env}] could not release the bake's lock {name} ({exc}): it expires at {mine['until']}, or the "
                  f"next bake on this machine takes it over", flush=True)
        else:
            if not released:
                print(f"[{env}] the bake's lock {name} was no longer this bake's (taken over): left as it is",
                      flush=True)
