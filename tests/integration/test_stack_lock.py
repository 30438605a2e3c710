"""One run at a time per stack: the SSM run lock (roles/stack/library/stack_lock.py), taken by
every stack playbook before any change and released when the run ends, a failed run too
(plugins/callback/stack_lock_release.py); a killed run's lock is taken over."""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodestack.local_cloud import identities, request_log, server
from tests.conftest import BIN, REPO, client

LOCK = "/nodeapp/local/lock/stack"  # the naming map's lock_parameter for the local inventory
HOLDER = f"arn:aws:sts::{identities.ACCOUNT}:user/moto"


def playbook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=REPO, env={**env, "ANSIBLE_FORCE_COLOR": "0"},
                          capture_output=True, text=True, timeout=300, check=False)


def held(local_cloud: server.Endpoint) -> dict[str, Any] | None:
    ssm = client(local_cloud.url, "ssm")
    try:
        return dict(json.loads(ssm.get_parameter(Name=LOCK)["Parameter"]["Value"]))
    except ssm.exceptions.ParameterNotFound:
        return None


def put_lock(local_cloud: server.Endpoint, **fields: Any) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    value = {"run": "earlier-run", "holder": "arn:aws:sts::123456789012:assumed-role/deployer/ci", "who": "ci@runner",
             "host": socket.gethostname(), "pid": os.getpid(), "since": now.isoformat(),
             "until": (now + datetime.timedelta(minutes=90)).isoformat(), **fields}
    client(local_cloud.url, "ssm").put_parameter(Name=LOCK, Value=json.dumps(value), Type="String", Overwrite=True)
    return value


@pytest.fixture(autouse=True)
def _no_lock(promoted_ami: str, local_cloud: server.Endpoint) -> Iterator[None]:
    """Each test starts and ends with the stack unlocked (preflight finds the promoted AMI)."""
    client(local_cloud.url, "ssm").delete_parameters(Names=[LOCK])
    yield
    client(local_cloud.url, "ssm").delete_parameters(Names=[LOCK])


def flat(output: str) -> str:
    return " ".join(output.split())  # Ansible folds long messages


def test_a_second_run_is_refused_at_once_naming_the_holder_and_runs_once_it_ends(
        aws_env: dict[str, str], local_cloud: server.Endpoint, tmp_path: Path) -> None:
    release = tmp_path / "release"
    holder = subprocess.Popen([str(BIN / "ansible-playbook"), "tests/integration/playbooks/hold_stack_lock.yml",
                               "-e", f"hold_until={release}"], cwd=REPO, env={**aws_env, "ANSIBLE_FORCE_COLOR": "0"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while held(local_cloud) is None:
            assert holder.poll() is None and time.monotonic() < deadline, holder.communicate()[0][-3000:]
            time.sleep(0.5)
        lock = held(local_cloud)
        assert lock is not None and lock["pid"] == holder.pid and lock["holder"] == HOLDER

        log = local_cloud.request_log
        before = request_log.log_size(log)
        second = playbook(aws_env, "site.yml")
        assert second.returncode != 0
        assert holder.poll() is None  # refused while the first run holds on, not after it
        assert (f"{LOCK} is held by {HOLDER} ({lock['who']}, process {holder.pid}, run {lock['run']}) since "
                f"{lock['since']}") in flat(second.stdout), second.stdout[-3000:]
        calls = request_log.count_calls(log, before)[1]
        assert not [c for c in calls if c.split(":")[1].startswith(("Put", "Create", "Delete"))], calls
        assert held(local_cloud) == lock  # the holder's lock is left as it was

        release.touch()
        out, _ = holder.communicate(timeout=120)
        assert holder.returncode == 0, out[-3000:]
        assert f"Released the stack's lock {LOCK}" in out
        assert held(local_cloud) is None
    finally:
        if holder.poll() is None:
            holder.kill()
    after = playbook(aws_env, "playbooks/preflight.yml")
    assert after.returncode == 0, after.stdout[-3000:]


def test_a_killed_runs_lock_is_taken_over_at_once_on_its_machine(aws_env: dict[str, str],
                                                                local_cloud: server.Endpoint) -> None:
    holder = subprocess.Popen([str(BIN / "ansible-playbook"), "tests/integration/playbooks/hold_stack_lock.yml"],
                              cwd=REPO, env={**aws_env, "ANSIBLE_FORCE_COLOR": "0"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while held(local_cloud) is None:
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.5)
    os.killpg(holder.pid, signal.SIGKILL)  # no callback runs: the lock stays
    holder.wait()
    assert held(local_cloud) is not None

    result = playbook(aws_env, "playbooks/preflight.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"its process {holder.pid} on this machine has ended" in flat(result.stdout + result.stderr)
    assert held(local_cloud) is None


@pytest.mark.parametrize(("lock", "taken"), [
    ({"host": "another-machine", "until": "2026-01-01T00:00:00+00:00"}, "expired at 2026-01-01T00:00:00+00:00"),
    ({"until": "soon"}, "its value is not a lock of this project (unreadable)"),
    ({"host": "another-machine"}, None),  # live elsewhere: refused
    # this hostname, another boot (a container or runner of the same name): not this machine's process
    ({"boot": "another-boot", "pid": 2 ** 22 + 1}, None),
    ({}, None),  # this test's own process: alive, refused
])
def test_a_lock_is_taken_over_only_when_its_holder_is_gone(aws_env: dict[str, str], local_cloud: server.Endpoint,
                                                           lock: dict[str, str], taken: str | None) -> None:
    put_lock(local_cloud, **lock)
    result = playbook(aws_env, "playbooks/preflight.yml")
    output = flat(result.stdout + result.stderr)
    if taken:
        assert result.returncode == 0, result.stdout[-3000:]
        assert f"Taking over {LOCK} from" in output and taken in output
        assert held(local_cloud) is None  # released at the end
    else:
        assert result.returncode != 0
        assert "Wait for it to end; if it was killed, its lock expires at" in output
        assert held(local_cloud) is not None and held(local_cloud)["run"] == "earlier-run"  # type: ignore[index]
        forced = playbook(aws_env, "playbooks/preflight.yml", "-e", "stack_lock_take_over=true")
        assert forced.returncode == 0, forced.stdout[-3000:]
        assert held(local_cloud) is None


def test_a_run_that_fails_after_taking_the_lock_releases_it(aws_env: dict[str, str],
                                                           local_cloud: server.Endpoint) -> None:
    # an app without an AMI: the rollout takes its lock, then stops finding no AMI to roll out
    result = playbook(aws_env, "playbooks/rollout.yml", "-e", "stack_app_name=lockfail",
                      "-e", "stack_preflight_permissions=false")  # no boundary for this app
    assert result.returncode != 0
    assert "/lockfail/dev/ami/latest" in result.stdout, result.stdout[-3000:]
    assert "Released the stack's lock /lockfail/local/lock/stack" in result.stdout


def test_bad_input_is_refused_before_the_lock_is_taken(aws_env: dict[str, str], local_cloud: server.Endpoint) -> None:
    result = playbook(aws_env, "site.yml", "-e", "stack_ami_id=ami-0123456789abcdef0")  # preflight's last read
    assert result.returncode != 0
    assert "AMI ami-0123456789abcdef0 is missing" in result.stdout
    assert "stack's lock" not in result.stdout
    assert held(local_cloud) is None


def test_check_mode_takes_no_lock_and_warns_of_a_holder(aws_env: dict[str, str], local_cloud: server.Endpoint) -> None:
    result = playbook(aws_env, "playbooks/preflight.yml", "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    assert held(local_cloud) is None
    put_lock(local_cloud)
    result = playbook(aws_env, "playbooks/preflight.yml", "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"{LOCK} is held by" in flat(result.stdout + result.stderr)
    assert held(local_cloud)["run"] == "earlier-run"  # type: ignore[index]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_releases_its_lock(aws_env: dict[str, str], local_cloud: server.Endpoint,
                                              stop: signal.Signals) -> None:
    holder = subprocess.Popen([str(BIN / "ansible-playbook"), "tests/integration/playbooks/hold_stack_lock.yml"],
                              cwd=REPO, env={**aws_env, "ANSIBLE_FORCE_COLOR": "0"}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # once the run is past taking the lock (the callback has seen it taken): a signal between the
        # module's write and its result reaching the callback leaves the lock (docs/stack.md)
        assert holder.stdout is not None
        seen = ""
        while "TASK [Hold it]" not in seen:
            line = holder.stdout.readline()
            assert line, seen[-3000:]
            seen += line
        assert held(local_cloud) is not None
        os.killpg(holder.pid, stop)  # Ctrl-C reaches the whole process group; so does a CI's cancel
        out, _ = holder.communicate(timeout=60)
        out = seen + out
    finally:
        if holder.poll() is None:
            holder.kill()
    assert holder.returncode != 0
    assert f"Released the stack's lock {LOCK}" in out, out[-3000:]
    assert held(local_cloud) is None


def test_a_layer_or_the_app_configuration_run_alone_takes_the_lock_too(aws_env: dict[str, str],
                                                                       local_cloud: server.Endpoint) -> None:
    lock = put_lock(local_cloud, host="another-machine")
    before = request_log.log_size(local_cloud.request_log)
    for alone in ("playbooks/iam.yml", "playbooks/app_config.yml"):
        result = playbook(aws_env, alone)
        assert result.returncode != 0, alone
        assert f"{LOCK} is held by {lock['holder']}" in flat(result.stdout), result.stdout[-3000:]
    calls = request_log.count_calls(local_cloud.request_log, before)[1]
    assert not [c for c in calls if c.split(":")[1].startswith(("Put", "Create", "Delete"))], calls

    client(local_cloud.url, "ssm").delete_parameters(Names=[LOCK])
    result = playbook(aws_env, "playbooks/iam.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"Released the stack's lock {LOCK}" in result.stdout
