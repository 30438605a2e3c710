"""The bake's JSON report (.state/bake/report.json, or --report FILE), written in every outcome:
at the start with status "running" (so an earlier run's report never survives this one, and a
run killed outright leaves a report that says it never finished), then with how it ended."""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nodestack.bake.run_owner import utc_iso
from nodestack.paths import state_dir

# status: how the run ended (exit code in brackets)
RUNNING = "running"  # not yet ended, or killed outright (SIGKILL)
PREFLIGHT_FAILED = "preflight_failed"  # (2) refused before anything was launched
FAILED = "failed"  # (1) at least one environment failed
STOPPED = "stopped"  # (128 + signal) SIGTERM or SIGINT
OK = "ok"  # (0) every environment validated and promoted


def default_path() -> Path:
    return state_dir() / "bake" / "report.json"


def ci_run_url() -> str:
    """The GitHub Actions run (its log and artefacts) when the job runs in one."""
    parts = [os.environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    return f"{parts[0]}/{parts[1]}/actions/runs/{parts[2]}" if all(parts) else ""


@dataclass
class RunReport:
    """One run of `nodestack bake`. results: each environment's EnvResult as a dict, with the
    path of its Packer log (packer_log) and what it removed of earlier runs (leftovers_removed)."""

    path: Path
    envs: list[str]
    started_at: str = field(default_factory=lambda: utc_iso(datetime.now(timezone.utc)))
    target: str = "local"
    prune_dry_run: bool = False
    status: str = RUNNING
    error: str = ""
    ended_at: str = ""
    exit_code: int | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    notification: str = ""  # what became of the SNS message (notify.py)
    host: str = field(default_factory=socket.gethostname)
    ci_run: str = field(default_factory=ci_run_url)

    def end(self, status: str, exit_code: int, error: str = "") -> None:
        self.status, self.exit_code, self.error = status, exit_code, error
        self.ended_at = utc_iso(datetime.now(timezone.utc))

    def failed(self) -> list[dict[str, Any]]:
        """The environments that failed, with their errors."""
        return [r for r in self.results if r.get("error") or not r.get("promoted")]

    def write(self) -> bool:
        """Replace the file at once (write beside, then rename: a reader never sees half a report);
        a failure is printed as one line, not raised: the run's own outcome stays what it is."""
        data = {key: value for key, value in asdict(self).items() if key != "path"}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data, indent=2) + "\n")
            temporary.replace(self.path)
        except OSError as exc:
            print(f"bake: cannot write the report {self.path}: {exc}", file=sys.stderr)
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass
            return False
        return True
