"""Run the Molecule scenarios side by side: one log per scenario, wall seconds each.

Scenarios spend most of their time waiting on containers (apt, systemd, podman exec),
so running a few at once on a 2-core machine cuts the total; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from nodestack.paths import REPO_ROOT, podman_env, state_dir

DEFAULT_JOBS = 3


@dataclass(frozen=True)
class ScenarioRun:
    name: str
    ok: bool
    wall_s: float
    log: str


def scenarios() -> list[str]:
    """Every directory under molecule/ that holds a molecule.yml."""
    return sorted(p.parent.name for p in (REPO_ROOT / "molecule").glob("*/molecule.yml"))


def _run_one(name: str, log_dir: Path) -> ScenarioRun:
    log = log_dir / f"{name}.log"
    env = {**podman_env(), "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(["molecule", "test", "-s", name], cwd=REPO_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    return ScenarioRun(name, result.returncode == 0, round(time.monotonic() - start, 1), str(log))


def run_all(names: list[str], jobs: int = DEFAULT_JOBS, log_dir: Path | None = None) -> list[ScenarioRun]:
    """`molecule test -s NAME` for each name, at most `jobs` at a time; results in input order."""
    log_dir = log_dir or state_dir() / "molecule"
    log_dir.mkdir(parents=True, exist_ok=True)
    # Fixtures first, once: the scenarios' dependency steps then find them made.
    subprocess.run([str(REPO_ROOT / "scripts/test-fixtures.sh")], cwd=REPO_ROOT, check=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda name: _run_one(name, log_dir), names))


def _tail(path: str, lines: int = 60) -> str:
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def _main(args: argparse.Namespace) -> int:
    known = scenarios()
    names = args.scenario or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise RuntimeError(f"unknown Molecule scenario(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    start = time.monotonic()
    runs = run_all(names, args.jobs)
    total = round(time.monotonic() - start, 1)
    for run in runs:
        print(f"--- molecule {run.name}: {'ok' if run.ok else 'FAILED'} ({run.wall_s:.0f}s, log {run.log})")
        if not run.ok:
            print(_tail(run.log))
    report = {"jobs": args.jobs, "total_wall_s": total, "scenarios": [asdict(r) for r in runs]}
    (state_dir() / "molecule" / "times.json").write_text(json.dumps(report, indent=2) + "\n")
    passed = sum(r.ok for r in runs)
    print(f"molecule: {passed} passed, {len(runs) - passed} failed in {total:.0f}s with {args.jobs} at a time")
    return 0 if passed == len(runs) and runs else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("molecule", help="run Molecule scenarios in parallel, one log each")
    parser.add_argument("scenario", nargs="*", help="scenario names (default: all under molecule/)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("NODESTACK_MOLECULE_JOBS", DEFAULT_JOBS)),
                        help=f"scenarios at a time (default $NODESTACK_MOLECULE_JOBS or {DEFAULT_JOBS})")
    parser.set_defaults(func=_main)
