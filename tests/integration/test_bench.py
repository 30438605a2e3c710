"""`nodestack bench` writes a report with wall seconds, changed counts and AWS API calls."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nodestack.local_cloud import server
from tests.conftest import cli


def test_bench_reports_start_time_and_playbook_counts(tmp_path: Path, local_cloud: server.Endpoint,
                                                       promoted_ami: str) -> None:
    # The session's local cloud is the one the playbook scenarios must find and count: the
    # stack torn down and created (every resource a change), then site.yml again (none).
    env = {**os.environ, "NODESTACK_STATE_DIR": str(local_cloud.request_log.parent)}
    result = cli("bench", "--scenario", "local-cloud-start", "--scenario", "stack-cold", "--scenario", "site-local",
                 "--runs", "1", "--out", str(tmp_path), env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["local-cloud-start"]["median"]["wall_s"] > 0
    cold, again = report["stack-cold"]["median"], report["site-local"]["median"]
    assert cold["changed"] >= 10, cold  # network, groups, IAM, load balancer, template, ASG, alarms, DNS
    assert again["changed"] == 0, again
    assert cold["api_calls"] > again["api_calls"] > 4  # preflight alone makes 4 calls
    table = (tmp_path / "report.md").read_text()
    assert "| site-local | 1 |" in table and "| stack-cold | 1 |" in table


def test_unknown_scenario_is_named(tmp_path: Path) -> None:
    result = cli("bench", "--scenario", "nope", "--out", str(tmp_path))
    assert result.returncode == 2 and "unknown scenario(s) nope" in result.stderr
