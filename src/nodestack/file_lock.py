"""Exclusive locks between this machine's processes (flock: released when the holder exits)."""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path
from typing import IO


def take_lock(path: Path, on_busy: Callable[[], None]) -> IO[str]:
    """path's exclusive lock, held until the returned file is closed. When another process
    holds it, on_busy() runs first: it raises to give up, or returns to wait for the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_busy()
            fcntl.flock(handle, fcntl.LOCK_EX)
    except BaseException:
        handle.close()
        raise
    return handle
