"""The project's benchmark: named scenarios, median of N runs, JSON + Markdown report.

Each scenario reports wall seconds and, where it applies, Ansible `changed`
counts and AWS API calls (counted from the local endpoint's request log).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nodestack import molecule_runner
from nodestack.local_cloud import base_image, request_log, server
from nodestack.paths import REPO_ROOT, free_port, podman_env, state_dir

Metrics = dict[str, float]
_RECAP = re.compile(r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    run_once: Callable[[], Metrics]
    default_runs: int = 3


def _cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "nodestack.cli", *args], env=env, check=True,
                   capture_output=True, text=True)


def local_cloud_start() -> Metrics:
    """`nodestack local up` from nothing to an answering endpoint, in a scratch state dir."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "NODESTACK_STATE_DIR": scratch, "NODESTACK_LOCAL_PORT": str(free_port())}
        start = time.monotonic()
        _cli("local", "up", env=env)
        wall = time.monotonic() - start
        _cli("local", "down", env=env)
    return {"wall_s": wall}


def base_image_cold() -> Metrics:
    """Full debootstrap + import into a throwaway tag, removed afterwards."""
    tag = "localhost/nodestack-base:bench"
    start = time.monotonic()
    base_image.build(image=tag, force=True)
    wall = time.monotonic() - start
    subprocess.run(["podman", "rmi", "-f", tag], env=podman_env(), capture_output=True, check=False)
    return {"wall_s": wall}


def base_image_cached() -> Metrics:
    """`nodestack image build` when the image from the same recipe exists."""
    base_image.build()  # make sure it exists; not timed
    start = time.monotonic()
    _cli("image", "build", env=dict(os.environ))
    return {"wall_s": time.monotonic() - start}


def run_playbook(*args: str) -> Metrics:
    """Run ansible-playbook against the running local cloud: wall s, changed, AWS API calls."""
    endpoint = server.current()
    if endpoint is None:
        raise RuntimeError("the local cloud is not running: start it with `nodestack local up`")
    env = {**os.environ, **server.environment(endpoint.port)}
    offset = request_log.log_size(endpoint.request_log)
    start = time.monotonic()
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True)
    wall = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"ansible-playbook {' '.join(args)} failed:\n{result.stdout[-3000:]}")
    changed = sum(int(m.group(2)) for m in _RECAP.finditer(result.stdout))
    calls, _ = request_log.count_calls(endpoint.request_log, offset)
    return {"wall_s": wall, "changed": changed, "api_calls": calls}


def stack_cold() -> Metrics:
    """site.yml on an account without the stack (torn down first, untimed)."""
    run_playbook("playbooks/teardown.yml")
    return run_playbook("site.yml")


def stack_teardown() -> Metrics:
    """playbooks/teardown.yml of a built stack (built first, untimed)."""
    run_playbook("site.yml")
    return run_playbook("playbooks/teardown.yml")


_LOCAL_CREDENTIALS = {"region_name": server.DEFAULT_REGION, "aws_access_key_id": "testing",
                      "aws_secret_access_key": "testing"}  # the emulator's; never AWS's


def instance_to_healthy(group_name: str = "nodeapp-local", timeout: float = 600) -> Metrics:
    """Terminate one instance of the built stack's group (site.yml first, untimed) and time its
    replacement: launch to container running, and to healthy in the load balancer."""
    import boto3

    run_playbook("site.yml")
    endpoint = server.current()
    assert endpoint is not None
    scaling, elb = (boto3.client(service, endpoint_url=endpoint.url, **_LOCAL_CREDENTIALS)
                    for service in ("autoscaling", "elbv2"))
    group = scaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"][0]
    before = {i["InstanceId"] for i in group["Instances"]}
    start = time.monotonic()
    scaling.terminate_instance_in_auto_scaling_group(InstanceId=sorted(before)[0], ShouldDecrementDesiredCapacity=False)
    container_s = None
    while time.monotonic() - start < timeout:
        status = server.data_plane_status() or {}
        fresh = [i for i in status.get("instances", []) if i["id"] not in before and i.get("container")]
        if fresh and container_s is None:
            container_s = time.monotonic() - start
        health = elb.describe_target_health(TargetGroupArn=group["TargetGroupARNs"][0])["TargetHealthDescriptions"]
        if any(t["Target"]["Id"] not in before and t["TargetHealth"]["State"] == "healthy" for t in health):
            return {"wall_s": time.monotonic() - start, "container_s": container_s or 0.0}
        time.sleep(0.5)
    raise RuntimeError(f"no replacement of {group_name} became healthy within {timeout:.0f}s")


def make_up() -> Metrics:
    """`make up` end to end (set-up current, local cloud stopped first, untimed)."""
    _cli("local", "down", env=dict(os.environ))
    start = time.monotonic()
    result = subprocess.run(["make", "up"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"make up failed:\n{result.stdout[-3000:]}")
    return {"wall_s": time.monotonic() - start}


def molecule_roles() -> Metrics:
    """Every Molecule scenario, as `make test` runs them; total and per-scenario wall seconds."""
    start = time.monotonic()
    runs = molecule_runner.run_all(molecule_runner.scenarios())
    failed = [r.name for r in runs if not r.ok]
    if failed:
        raise RuntimeError(f"Molecule scenario(s) failed: {', '.join(failed)}; logs in {state_dir() / 'molecule'}")
    return {"wall_s": time.monotonic() - start, **{f"{r.name}_s": r.wall_s for r in runs}}


def bake(cold: bool) -> Metrics:
    """`nodestack bake --env dev --env prod` on the running local cloud; per-phase seconds."""
    if server.current() is None:
        raise RuntimeError("the local cloud is not running: start it with `nodestack local up`")
    if cold:
        shutil.rmtree(REPO_ROOT / ".state" / "apt-cache", ignore_errors=True)
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "nodestack.cli", "bake", "--env", "dev", "--env", "prod"],
                            cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"nodestack bake failed:\n{result.stderr[-3000:]}")
    report = json.loads((state_dir() / "bake" / "report.json").read_text())
    phases = {f"{r['env']}_{name}_s": secs for r in report["results"] for name, secs in r["phases"].items()}
    return {"wall_s": wall, **phases}


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("local-cloud-start", "local endpoint: `nodestack local up` until it answers", local_cloud_start, 5),
    Scenario("base-image-cold", "base image: debootstrap + podman import", base_image_cold, 1),
    Scenario("base-image-cached", "base image: cached run, recipe unchanged", base_image_cached, 5),
    Scenario("site-local", "`ansible-playbook site.yml` on the local cloud (no-op after the first run)",
             lambda: run_playbook("site.yml"), 3),
    Scenario("stack-cold", "site.yml creating the whole stack (torn down before, untimed)", stack_cold, 3),
    Scenario("stack-teardown", "playbooks/teardown.yml of the whole stack (built before, untimed)", stack_teardown, 3),
    Scenario("instance-to-healthy", "a replaced instance of the group: launch to container, to healthy in the LB",
             instance_to_healthy, 3),
    Scenario("make-up", "`make up` end to end: local cloud, image, bake dev + prod, site.yml, the app answering",
             make_up, 1),
    Scenario("bake-cold", "bake dev + prod, empty package cache", lambda: bake(cold=True), 1),
    Scenario("bake-warm", "bake dev + prod, package cache filled", lambda: bake(cold=False), 1),
    Scenario("molecule-roles", "all Molecule scenarios, $NODESTACK_MOLECULE_JOBS (3) at a time", molecule_roles, 1),
)}


def run(names: list[str], runs: int | None) -> dict[str, dict[str, object]]:
    report: dict[str, dict[str, object]] = {}
    for name in names:
        scenario = SCENARIOS[name]
        samples = [scenario.run_once() for _ in range(runs or scenario.default_runs)]
        medians = {key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]}
        report[name] = {"summary": scenario.summary, "runs": len(samples), "median": medians,
                        "samples": samples}
        print(f"{name}: {medians}", flush=True)
    return report


def to_markdown(report: dict[str, dict[str, object]]) -> str:
    lines = ["| scenario | runs | wall s (median) | changed | AWS API calls | what | more |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in report.items():
        med: dict[str, float] = row["median"]  # type: ignore[assignment]
        cells = [name, str(row["runs"]), f"{med['wall_s']:.2f}",
                 str(int(med["changed"])) if "changed" in med else "-",
                 str(int(med["api_calls"])) if "api_calls" in med else "-", str(row["summary"]),
                 ", ".join(f"{k} {v:g}" for k, v in med.items() if k not in ("wall_s", "changed", "api_calls")) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _main(args: argparse.Namespace) -> int:
    names = args.scenario or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise RuntimeError(f"unknown scenario(s) {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    report = run(names, args.runs)
    out = Path(args.out or state_dir() / "bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(to_markdown(report))
    print(f"report: {out / 'report.json'} and {out / 'report.md'}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="run benchmark scenarios and write a JSON + Markdown report")
    parser.add_argument("--scenario", action="append", help=f"repeatable; default all: {', '.join(SCENARIOS)}")
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (default: per scenario)")
    parser.add_argument("--out", default=None, help="report directory (default .state/bench)")
    parser.set_defaults(func=_main)
