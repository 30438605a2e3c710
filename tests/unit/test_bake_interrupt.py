"""SIGTERM/SIGINT of `nodestack bake` stops it cleanly: Packer (in a session of its own, which no
terminal signal reaches) is sent SIGINT, on which it cleans up, and the job learns it was
stopped; Packer's timeout also sends SIGINT, never SIGKILL (which would leave its instance).
A stand-in `packer` on PATH records the signal it got."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from nodestack.bake import interrupt, packer_build

# Packer's behaviour on SIGINT, as far as these tests need it: clean up, say so, exit 1.
FAKE_PACKER = """#!/bin/sh
trap 'echo "cleaned up after SIGINT" >> "$MARK"; exit 1' INT
echo "building"
while :; do sleep 0.1; done
"""


@pytest.fixture
def fake_packer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "bin").mkdir()
    packer = tmp_path / "bin" / "packer"
    packer.write_text(FAKE_PACKER)
    packer.chmod(0o755)
    monkeypatch.setenv("PATH", f"{packer.parent}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "mark"


def _build(mark: Path, timeout_s: float, outcome: list[BaseException]) -> None:
    env = {**os.environ, "MARK": str(mark)}
    try:
        packer_build.build(mark.parent / "dev.pkrvars.hcl", {}, env, "dev", mark.parent / "manifest.json",
                           mark.parent / "packer.log", timeout_s)
    except packer_build.PackerError as exc:
        outcome.append(exc)


def _wait_for(path: Path, text: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.is_file() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def test_sigterm_makes_packer_clean_up_and_the_job_stop(fake_packer: Path) -> None:
    outcome: list[BaseException] = []
    previous = signal.getsignal(signal.SIGTERM)
    with interrupt.stop_signals():
        builder = threading.Thread(target=_build, args=(fake_packer, 60, outcome))
        builder.start()
        _wait_for(fake_packer.parent / "packer.log", "building")
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` or a CI runner's cancel
        builder.join(10)
        assert not builder.is_alive(), "Packer did not stop"
        with pytest.raises(interrupt.Stopped, match="stopped by SIGTERM before promotion"):
            interrupt.check("promotion")  # no environment goes on to its next step
        assert (interrupt.requested(), interrupt.exit_code()) == ("SIGTERM", 143)
    assert fake_packer.read_text() == "cleaned up after SIGINT\n"
    assert [str(e) for e in outcome] == [f"packer build failed (exit 1); its output is in "
                                         f"{fake_packer.parent / 'packer.log'}"]
    assert signal.getsignal(signal.SIGTERM) is previous
    interrupt.check("the next run")  # outside, nothing is stopped any more


def test_a_packer_started_after_the_signal_is_stopped_at_once(fake_packer: Path) -> None:
    outcome: list[BaseException] = []
    with interrupt.stop_signals():
        os.kill(os.getpid(), signal.SIGINT)
        began = time.monotonic()
        _build(fake_packer, 60, outcome)  # the race: it started between a check and the signal
        assert interrupt.requested() == "SIGINT"
    # told at once (so fast that the stand-in may not have set its trap yet: then SIGINT ended it)
    assert outcome and time.monotonic() - began < 10


def test_packers_timeout_lets_it_clean_up(fake_packer: Path) -> None:
    outcome: list[BaseException] = []
    _build(fake_packer, 1, outcome)
    assert [str(e) for e in outcome] == ["packer build did not finish within 1s"]
    assert fake_packer.read_text() == "cleaned up after SIGINT\n"
