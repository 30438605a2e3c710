"""site.yml on the local cloud: runs, is idempotent, and bad input is named before any change."""

from __future__ import annotations

import re
import subprocess

import pytest

from nodestack.local_cloud import request_log, server
from tests.conftest import BIN, REPO


def playbook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=REPO, env={**env, "ANSIBLE_FORCE_COLOR": "0"},
                          capture_output=True, text=True, timeout=300, check=False)


def recap(output: str) -> dict[str, int]:
    match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups()), strict=True))


def test_site_runs_twice_with_nothing_changed(aws_env: dict[str, str], local_cloud: server.Endpoint) -> None:
    for _ in range(2):
        result = playbook(aws_env, "site.yml")
        assert result.returncode == 0, result.stdout[-3000:]
        assert recap(result.stdout)["changed"] == 0
    assert f"via {local_cloud.url}" in result.stdout


def test_site_reaches_the_endpoint_it_was_given(aws_env: dict[str, str], local_cloud: server.Endpoint) -> None:
    log = local_cloud.request_log
    before = request_log.log_size(log)
    assert playbook(aws_env, "site.yml").returncode == 0
    assert request_log.count_calls(log, before)[1]["sts:GetCallerIdentity"] == 1


@pytest.mark.parametrize(("override", "named"), [
    ("aws_region=moon-1", "aws_region=moon-1 is invalid"),
    ("stack_env=staging", "stack_env=staging is invalid"),
    ("stack_app_name=Bad_Name", "stack_app_name=Bad_Name is invalid"),
    ("aws_endpoint_url=http://aws.example.invalid:5055", "aws_endpoint_url=http://aws.example.invalid:5055 is not a loopback URL"),
])
def test_bad_input_is_named_and_nothing_is_called(
    aws_env: dict[str, str], local_cloud: server.Endpoint, override: str, named: str
) -> None:
    log = local_cloud.request_log
    before = request_log.log_size(log)
    result = playbook(aws_env, "site.yml", "-e", override)
    assert result.returncode != 0
    assert named in result.stdout
    assert request_log.count_calls(log, before)[0] == 0
