"""`nodestack bake` writes its report in every outcome, a preflight failure included, so that the
nightly job's artefact is this run's: the status, the error, the environments asked for and
the times; an earlier run's report never survives a run that fails early."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

import pytest

from nodestack.bake import notify
from nodestack.bake import report as run_report
from tests.conftest import cli

STALE = {"results": [{"env": "dev", "ami_id": "ami-yesterday", "promoted": True}], "prune_dry_run": False}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def bake_env(tmp_path: Path) -> dict[str, str]:
    """A state directory of the test's own; no topic from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if k != notify.TOPIC_ENV}
    return {**env, "NODESTACK_STATE_DIR": str(tmp_path / "state")}


@pytest.mark.parametrize(("args", "error"), [
    (["--env", "dev", "--keep", "0"], "--keep 0 is invalid"),
    (["--env", "dev", "--notify-topic", "ops-alerts"], "--notify-topic 'ops-alerts' is not the ARN"),
])
def test_a_preflight_failure_replaces_the_earlier_report(args: list[str], error: str, bake_env: dict[str, str],
                                                         tmp_path: Path) -> None:
    report = tmp_path / "ci" / "report.json"
    report.parent.mkdir()
    report.write_text(json.dumps(STALE))
    result = cli("bake", *args, "--report", str(report), env=bake_env)
    assert result.returncode == 2 and error in result.stderr and "nothing was launched" in result.stderr
    assert f"report: {report}" in result.stdout
    written = json.loads(report.read_text())
    assert (written["status"], written["exit_code"], written["envs"], written["results"]) == (
        "preflight_failed", 2, ["dev"], [])
    assert error in written["error"]
    assert ISO_UTC.fullmatch(written["started_at"]) and ISO_UTC.fullmatch(written["ended_at"])
    assert written["started_at"] <= written["ended_at"]
    assert list(report.parent.iterdir()) == [report], "a temporary file was left beside the report"


def test_the_default_report_is_replaced_too(bake_env: dict[str, str]) -> None:
    """No --report: .state/bake/report.json, where the nightly job's artefact step looks."""
    report = Path(bake_env["NODESTACK_STATE_DIR"]) / "bake" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps(STALE))
    result = cli("bake", env={**bake_env, notify.TOPIC_ENV: "arn:aws:sns:us-east-1:123:x"})
    assert result.returncode == 2 and f"{notify.TOPIC_ENV} 'arn:aws:sns:us-east-1:123:x' is not" in result.stderr
    assert json.loads(report.read_text())["status"] == "preflight_failed"


def test_a_report_that_cannot_be_written_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    report = run_report.RunReport(blocked / "report.json", envs=["dev"])
    report.end(run_report.FAILED, 1, "dev failed")
    assert report.write() is False
    assert capsys.readouterr().err.startswith(f"bake: cannot write the report {blocked / 'report.json'}: ")


def test_the_report_says_when_and_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "team/nodestack",
                        "GITHUB_RUN_ID": "42"}.items():
        monkeypatch.setenv(name, value)
    report = run_report.RunReport(tmp_path / "report.json", envs=["dev", "prod"], target="aws")
    assert report.write()
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["status"] == "running" and written["ended_at"] == "" and written["target"] == "aws"
    assert written["ci_run"] == "https://github.com/team/nodestack/actions/runs/42"
    assert datetime.strptime(written["started_at"], "%Y-%m-%dT%H:%M:%SZ")
