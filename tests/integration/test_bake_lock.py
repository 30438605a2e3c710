"""One bake of an app's environment at a time, across machines: the bake's lock in SSM
(nodestack.bake.run_lock, `/<app>/<env>/lock/bake`) on the local cloud. A bake another machine
holds refuses at once, naming it, before anything is launched; a stale lock is taken over; the
lock is gone after a bake stopped by SIGTERM (and after a successful one: test_bake)."""

from __future__ import annotations

import datetime
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodestack import names, ssm_lock
from nodestack.local_cloud import request_log, server
from tests.conftest import REPO, cli, client, env_for

LOCK = names.bake_lock_parameter("nodeapp", "dev")  # the local inventory's app, baked for dev
# what a bake could write before its build host exists: none may happen while another holds the lock
LAUNCHES = ("Run", "Import", "Create", "Register", "Delete", "Terminate")


@pytest.fixture
def env(local_cloud: server.Endpoint) -> Iterator[dict[str, str]]:
    """The CLI's environment on the session's local cloud; dev's bake lock free before and after."""
    ssm = client(local_cloud.url, "ssm")
    ssm.delete_parameters(Names=[LOCK])
    yield env_for(local_cloud)
    ssm.delete_parameters(Names=[LOCK])


def held(local_cloud: server.Endpoint) -> dict[str, Any] | None:
    return ssm_lock.read(client(local_cloud.url, "ssm"), LOCK)


def put_lock(local_cloud: server.Endpoint, minutes: int, **fields: Any) -> dict[str, Any]:
    """A lock as a bake on another machine (the nightly runner) holds it."""
    now = ssm_lock.utc_now()
    value = {"run": "bake-dev-elsewhere", "holder": "arn:aws:sts::123456789012:assumed-role/bake/nightly",
             "who": "runner@ci-runner-7", "host": "ci-runner-7", "boot": "another-boot", "pid": 4242,
             "since": now.isoformat(), "until": (now + datetime.timedelta(minutes=minutes)).isoformat(), **fields}
    client(local_cloud.url, "ssm").put_parameter(Name=LOCK, Value=json.dumps(value), Type="String", Overwrite=True)
    return value


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_bake_held_elsewhere_is_refused_at_once_naming_the_holder(env: dict[str, str], tmp_path: Path,
                                                                    local_cloud: server.Endpoint) -> None:
    lock = put_lock(local_cloud, 90)
    before = request_log.log_size(local_cloud.request_log)
    report = tmp_path / "report.json"
    result = cli("bake", "--env", "dev", "--report", str(report), env=env, timeout=300)
    assert result.returncode == 1, (result.stdout + result.stderr)[-3000:]
    assert (f"{LOCK} is held by {lock['holder']} (runner@ci-runner-7, process 4242, run bake-dev-elsewhere) since "
            f"{lock['since']}, until {lock['until']}: a bake of nodeapp dev is running on ci-runner-7. Nothing was "
            f"launched for dev.") in flat(result.stderr), result.stderr[-3000:]
    assert "or take it now: run again with --take-over-lock." in flat(result.stderr)
    calls = request_log.count_calls(local_cloud.request_log, before)[1]
    assert not [c for c in calls if c.split(":")[1].startswith(LAUNCHES)], calls  # no key pair, no build host
    assert json.loads(report.read_text())["results"][0]["build_name"] == ""  # refused before the run was named
    assert held(local_cloud) == lock  # the holder's lock is left as it was


def test_prune_is_refused_too_and_takes_the_lock_over_when_told(env: dict[str, str],
                                                                 local_cloud: server.Endpoint) -> None:
    lock = put_lock(local_cloud, 90)
    refused = cli("prune", "--env", "dev", env=env, timeout=120)
    assert refused.returncode == 2 and f"{LOCK} is held by {lock['holder']}" in flat(refused.stderr)
    assert held(local_cloud) == lock
    forced = cli("prune", "--env", "dev", "--take-over-lock", env=env, timeout=120)
    assert forced.returncode == 0, (forced.stdout + forced.stderr)[-3000:]
    assert f"[dev] taking over the bake's lock {LOCK} from {lock['holder']}" in flat(forced.stdout)
    assert "--take-over-lock" in forced.stdout
    assert held(local_cloud) is None  # released when it ended


def stale_lock(local_cloud: server.Endpoint, kind: str) -> tuple[dict[str, Any], str]:
    """A lock a bake may take over, and why the bake says it may."""
    if kind == "expired":
        expired = put_lock(local_cloud, -5)
        return expired, (f"(runner@ci-runner-7, process 4242, run bake-dev-elsewhere) since {expired['since']}, "
                         f"until {expired['until']}: expired at {expired['until']}")
    # dead on this machine: its process has ended (this boot and PID namespace), so it is taken over
    gone = subprocess.Popen(["true"])
    started = ssm_lock.start_time(gone.pid)
    gone.wait()
    dead = put_lock(local_cloud, 90, host=socket.gethostname(), boot=ssm_lock.boot_id(),
                    pidns=ssm_lock.pid_namespace(), pid=gone.pid, started=started)
    return dead, f"its process {gone.pid} on this machine has ended"


@pytest.mark.parametrize("kind", ["expired", "holder-gone"])
def test_a_stale_lock_is_taken_over_and_a_stopped_bake_releases_it(kind: str, env: dict[str, str],
                                                                    local_cloud: server.Endpoint,
                                                                    tmp_path: Path) -> None:
    # A successful bake leaves no lock either: test_bake's bakes check it.
    stale, why = stale_lock(local_cloud, kind)
    report = tmp_path / "report.json"
    bake = subprocess.Popen([sys.executable, "-m", "nodestack.cli", "bake", "--env", "dev", "--report", str(report)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while (lock := held(local_cloud)) in (None, stale):
            assert bake.poll() is None and time.monotonic() < deadline, bake.communicate()[0][-3000:]
            time.sleep(0.2)
        assert lock is not None and lock["pid"] == bake.pid and lock["boot"] == ssm_lock.boot_id()
        bake.send_signal(signal.SIGTERM)
        out, _ = bake.communicate(timeout=300)
    finally:
        if bake.poll() is None:
            bake.kill()
    assert bake.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert f"[dev] taking over the bake's lock {LOCK} from {stale['holder']}" in flat(out), out[-3000:]
    assert why in flat(out), out[-3000:]
    assert json.loads(report.read_text())["status"] == "stopped"
    assert held(local_cloud) is None
