"""`nodestack local up|down|status` as a user runs them, each in its own state dir and port."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.conftest import cli


def _pid(env: dict[str, str]) -> int:
    return int(json.loads((Path(env["NODESTACK_STATE_DIR"]) / "local-cloud.json").read_text())["pid"])


def test_up_status_down_lifecycle(cli_env: dict[str, str]) -> None:
    assert cli("local", "status", env=cli_env).returncode == 3
    up = cli("local", "up", env=cli_env)
    assert up.returncode == 0, up.stderr
    assert "started" in up.stdout
    pid = _pid(cli_env)
    status = cli("local", "status", env=cli_env)
    assert status.returncode == 0 and "running" in status.stdout
    down = cli("local", "down", env=cli_env)
    assert down.returncode == 0 and f"pid {pid}" in down.stdout
    assert not Path(f"/proc/{pid}/cmdline").exists() or b"endpoint" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert cli("local", "status", env=cli_env).returncode == 3


def test_second_up_reuses_the_running_endpoint(cli_env: dict[str, str]) -> None:
    assert cli("local", "up", env=cli_env).returncode == 0
    first = _pid(cli_env)
    again = cli("local", "up", env=cli_env)
    assert again.returncode == 0 and "already running" in again.stdout
    assert _pid(cli_env) == first


def test_port_in_use_is_a_clear_error_not_a_hang(cli_env: dict[str, str]) -> None:
    port = int(cli_env["NODESTACK_LOCAL_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = cli("local", "up", env=cli_env, timeout=15)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    assert not (Path(cli_env["NODESTACK_STATE_DIR"]) / "local-cloud.json").exists()


def test_down_when_nothing_runs_is_not_an_error(cli_env: dict[str, str]) -> None:
    result = cli("local", "down", env=cli_env)
    assert result.returncode == 0 and "was not running" in result.stdout


def test_stale_pid_file_is_ignored(cli_env: dict[str, str]) -> None:
    state = Path(cli_env["NODESTACK_STATE_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    # pid 1 is alive but is not our endpoint: it must never be signalled.
    (state / "local-cloud.json").write_text(json.dumps({"pid": 1, "port": 1, "request_log": "x"}))
    assert cli("local", "status", env=cli_env).returncode == 3
    assert cli("local", "down", env=cli_env).returncode == 0
    assert not (state / "local-cloud.json").exists()
