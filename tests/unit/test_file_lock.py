"""take_lock: held across processes, refused or awaited as the caller decides."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodestack.file_lock import take_lock

HOLD = ("import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(float(sys.argv[2]))")


def hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def refuse() -> None:
    raise RuntimeError("busy")


def test_a_held_lock_is_refused_when_the_caller_gives_up(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "dev.lock"
    path.parent.mkdir()
    holder = hold(path, 30)
    try:
        with pytest.raises(RuntimeError, match="busy"):
            take_lock(path, refuse)
    finally:
        holder.kill()
        holder.wait()
    with take_lock(path, lambda: pytest.fail("free once its holder has exited")):
        pass


def test_a_held_lock_is_awaited_when_the_caller_waits(tmp_path: Path) -> None:
    path = tmp_path / "dev.lock"
    holder = hold(path, 1.5)
    waited: list[bool] = []
    start = time.monotonic()
    with take_lock(path, lambda: waited.append(True)):
        assert waited == [True]
        assert time.monotonic() - start > 1.0, "the lock was taken before its holder let go"
    holder.wait()
