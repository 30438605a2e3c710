"""SIGTERM or SIGINT stops `nodestack bake` cleanly. Packer runs in a session of its own (sh
starts every command with setsid), so neither a terminal's Ctrl-C nor a SIGTERM of the job
reaches it: the job sends it SIGINT, on which Packer terminates its build instance; each
environment's thread then fails as on any error, which deletes the build's security group
(build_group, retrying while the instance terminates), removes its build container and key
pair, and the report is written. A second signal ends the job at once;
the next bake of the environment then removes what was left (leftovers.py)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_stop = threading.Event()
_received: list[int] = []
_packers: set[int] = set()
_lock = threading.Lock()


class Stopped(RuntimeError):
    """The job was told to stop before this step began."""


def requested() -> str:
    """The name of the signal that asked the job to stop; "" when none did."""
    return signal.Signals(_received[0]).name if _received else ""


def exit_code() -> int:
    """What a shell reports for a process ended by the signal (128 + its number)."""
    return 128 + _received[0] if _received else 0


def check(step: str) -> None:
    """Stopped before step when a stop signal came."""
    if _stop.is_set():
        raise Stopped(f"stopped by {requested()} before {step}")


@contextmanager
def tracking(pid: int) -> Iterator[None]:
    """A running Packer, told to stop (SIGINT) when a stop signal comes, or at once when one came
    already (between the caller's last check and the start of the process)."""
    with _lock:
        _packers.add(pid)
    if _stop.is_set():
        _interrupt(pid)
    try:
        yield
    finally:
        with _lock:
            _packers.discard(pid)


def _interrupt(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pass


def _on_signal(signum: int, _frame: object) -> None:
    _received.append(signum)
    _stop.set()
    for sig in STOP_SIGNALS:  # a second signal ends the job at once
        signal.signal(sig, signal.SIG_DFL)
    with _lock:
        running = list(_packers)
    for pid in running:
        _interrupt(pid)
    # os.write: print() may be running in this thread already (not reentrant)
    message = (f"bake: {signal.Signals(signum).name}: stopping; Packer cleans up its build instance, then the "
               "build hosts are removed (signal again to stop at once; the next bake removes what is left)\n")
    os.write(2, message.encode())


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGINT stop the job cleanly while inside (main thread only: Python runs signal
    handlers there); the previous handlers afterwards. What requested() and exit_code() say holds
    while inside: read them there."""
    _stop.clear()
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop.clear()  # later runs in this process (tests) start afresh
        _received.clear()
