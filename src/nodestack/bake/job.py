"""`nodestack bake`: preflight, then per environment in parallel: what killed bakes left
removed, build host, Packer, validation, promotion, pruning; one summary table and a JSON
report, written in every outcome (report.py); a failed run notifies (notify.py). Exit 2 if
preflight refused, 1 if any environment failed, 128 + the signal if stopped by SIGTERM/SIGINT
(interrupt.py); a failed environment's AMI is never promoted."""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from nodestack import names, permissions
from nodestack.bake import (
    build_group,
    interrupt,
    leftovers,
    notify,
    packer_build,
    packer_log,
    registry,
    settings,
    source_check,
    validate,
)
from nodestack.bake import report as run_report
from nodestack.bake.build_host import (
    BUILD_USER,
    BuildHostError,
    LocalBuildHost,
    OneTimeKey,
    podman,
    require_free_space,
)
from nodestack.bake.imds_guard import ImdsGuard
from nodestack.bake.run_lock import PRUNE_MINUTES, TAKE_OVER_FLAG, bake_lock, lock_minutes
from nodestack.bake.run_owner import RunOwner
from nodestack.bake.target import (
    SSH_CIDR_MIN_PREFIX,
    SSH_CIDRS_ENV,
    SSH_INTERFACES,
    BakeError,
    Target,
    packer_env,
    resolve_target,
    ssh_cidrs,
)
from nodestack.file_lock import take_lock
from nodestack.local_cloud import base_image
from nodestack.paths import REPO_ROOT, state_dir

DEFAULT_KEEP = 5
DEFAULT_TIMEOUT_S = 1800
# With nodejs_version auto, where the image checks write the version the app runs (in the workdir).
NODE_VERSION_REPORT = "nodejs-version"
# packer validate's stand-in for the build's security group, which exists only once the build starts
PREFLIGHT_GROUP = "sg-00000000000000000"


@dataclass
class EnvResult:
    env: str
    ami_id: str = ""
    ami_name: str = ""
    duration_s: float = 0.0
    validation: str = "not run"
    promoted: bool = False
    ssm_parameter: str = ""
    pruned: list[str] = field(default_factory=list)
    error: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    nodejs_version: str = ""  # as resolved: nodejs_version auto takes it from the app
    build_name: str = ""  # the build container or key pair's name, to find what a killed run left
    packer_log: str = ""  # this run's Packer output for the environment
    leftovers_removed: list[str] = field(default_factory=list)  # what killed earlier bakes left, removed
    leftovers_failed: list[str] = field(default_factory=list)  # found but not removed, with why

    @property
    def ok(self) -> bool:
        return self.promoted and not self.error


def git_revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False).stdout.strip()
    revision = git("rev-parse", "HEAD") or "unknown"
    return revision + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def packer_variables(target: Target, env_settings: settings.EnvSettings, workdir: Path, stamp: str) -> dict[str, str]:
    variables = {
        "region": target.region,
        "app_name": env_settings.app_name,
        "project": names.project(),
        "build_timestamp": stamp,
        "git_revision": git_revision(),
        "nodejs_version": env_settings.nodejs_version,
        "app_revision": env_settings.app_revision,
        "app_commit": env_settings.app_commit,
        "app_service": env_settings.app.service,
        "app_user": env_settings.app.user,
        "app_dir": env_settings.app.app_dir,
        "app_port": str(env_settings.app.port),
        "app_health_path": env_settings.app.health_path,
        "app_health_status": str(env_settings.app.health_status),
        "expect_agents": env_settings.app.agents,
        "expect_log_group": env_settings.app.log_group,
        "playbook_vars_file": str(workdir / settings.PLAYBOOK_VARS),
        "vault_vars_file": str(env_settings.vault_file or ""),
        "build_known_hosts": str(workdir / "known_hosts"),
        "ssh_private_key_file": "",  # build_host() gives the one-time key's path
        "manifest_path": str(workdir / "manifest.json"),
        "node_version_report": str(workdir / NODE_VERSION_REPORT),
        "python": sys.executable,  # the image checks run with this venv's pytest-testinfra
        "ssh_interface": target.ssh_interface,
    }
    if target.local:
        variables.update({
            "ec2_endpoint": target.aws_env["AWS_ENDPOINT_URL"],
            # the emulator has no Debian image: its bundled Ubuntu images stand in as the source
            "source_ami_owners": '["099720109477"]',
            "source_ami_name": "ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*",
            "ssh_username": BUILD_USER,
            "ssh_host": "127.0.0.1",  # never an address the emulator invented
        })
    return variables


def preflight(envs: list[str], target_local: bool, keep: int, overrides: dict[str, Any],
              cidrs: list[str] | None = None, interface: str = "public_ip",
              check_permissions: bool = True) -> tuple[Target, dict[str, settings.EnvSettings]]:
    """Everything checkable before anything is launched; BakeError/BakeConfigError naming the fix."""
    if not envs:
        raise BakeError("no environment given: use --env dev and/or --env prod")
    if keep < 1:
        raise BakeError(f"--keep {keep} is invalid: keep at least 1 validated AMI per environment")
    if shutil.which("packer") is None:
        raise BakeError("packer is not installed: run scripts/setup.sh (Debian package `packer`)")
    target = resolve_target(target_local)
    if not target.local:
        target = replace(target, ssh_cidrs=tuple(ssh_cidrs(cidrs)), ssh_interface=interface)
    loaded = {env: settings.load(env, target.local, overrides) for env in dict.fromkeys(envs)}
    try:
        target = target.identified()  # the permission check and each environment's lock read it from here
    except (BotoCoreError, ClientError) as exc:
        raise BakeError(f"cannot reach AWS with the current credentials/endpoint: {exc}") from exc
    if check_permissions:
        check_bake_permissions(target, {s.app_name for s in loaded.values()})
    if target.local and podman("image", "exists", base_image.IMAGE, check=False).returncode != 0:
        raise BakeError(f"{base_image.IMAGE} is missing: run `nodestack image build`")
    if target.local:
        try:
            require_free_space(len(loaded))
        except BuildHostError as exc:
            raise BakeError(str(exc)) from exc
    ec2 = target.client("ec2")
    for env, env_settings in loaded.items():  # the build group's VPC: a wrong subnet_id launches nothing
        try:
            build_group.build_vpc(ec2, env_settings.subnet_id)
        except (BotoCoreError, ClientError) as exc:
            raise BakeError(f"[{env}] subnet_id {env_settings.subnet_id!r} of {settings.var_file(env)}: "
                            f"{' '.join(str(exc).split())}") from exc
    for env, env_settings in loaded.items():  # the commit each bakes, tagged AppCommit on its AMI
        try:
            loaded[env], said = source_check.pin(env_settings)
        except source_check.SourceUnreachable as exc:
            raise BakeError(f"[{env}] {exc}") from exc
        print(f"[{env}] {said}", flush=True)
    scratch = state_dir() / "bake" / "preflight"
    for env, env_settings in loaded.items():
        packer_build.validate(settings.var_file(env),
                              {**packer_variables(target, env_settings, scratch, "00000000000000"),
                               "security_group_id": PREFLIGHT_GROUP}, packer_env(target))
    return target, loaded


def check_bake_permissions(target: Target, apps: set[str]) -> None:
    """Every call of the bake simulated as the caller (policies/bake.yml) before a build host exists."""
    for app in sorted(apps):
        try:
            print(permissions.require(target.identity().arn, target.client("iam"), "bake", app, target.region,
                                      target.local), flush=True)
        except permissions.PolicyError as exc:
            raise BakeError(str(exc)) from exc


def lock_path(env: str) -> Path:
    return state_dir() / "bake" / f"{env}.lock"


@contextmanager
def env_lock(env: str) -> Iterator[None]:
    """This machine's lock of env's bake; the lock across machines is run_lock.bake_lock, taken inside it."""
    path = lock_path(env)

    def refuse() -> None:
        raise BakeError(f"a bake of {env} is already running (lock {path}); wait for it to finish")

    with take_lock(path, refuse):
        yield


@contextmanager
def build_host(target: Target, env_settings: settings.EnvSettings, owner: RunOwner, ec2: Any,
               workdir: Path) -> Iterator[dict[str, str]]:
    """The Packer variables that reach the build host: the bake's security group (build_group)
    and, locally, the build container. AWS: Packer launches the instance, with the job's one-time
    key (a file Packer and the checks read by path; Packer's own temporary key would only exist as
    a string), known_hosts from its console. Each carries owner's tags, so that the next bake can
    remove them if this one is killed."""
    env = env_settings.env
    with build_group.build_group(ec2, owner.run, env_settings.subnet_id, target.ssh_cidrs, owner.tag_list(),
                                 env) as group:
        if not target.local:
            with OneTimeKey(owner.run, ec2, workdir, owner.tag_list()) as key:
                yield {"security_group_id": group, "ssh_keypair_name": key.name,
                       "ssh_private_key_file": str(key.private)}
            return
        with LocalBuildHost(owner.run, env, ec2, env_settings.team_repo, owner) as host:
            shutil.copyfile(str(host.known_hosts), workdir / "known_hosts")
            yield {"security_group_id": group, "ssh_port": str(host.port), "ssh_keypair_name": host.key_name,
                   "ssh_private_key_file": str(host.key_file), "local_container": host.name}


def bake_env(target: Target, env_settings: settings.EnvSettings, keep: int, prune_dry_run: bool,
             timeout_s: float, lock_expiry: int | None = None, take_over_lock: bool = False) -> EnvResult:
    env = env_settings.env
    result = EnvResult(env, nodejs_version="" if env_settings.nodejs_version == "auto" else env_settings.nodejs_version)
    start = time.monotonic()
    ec2, ssm, autoscaling = target.client("ec2"), target.client("ssm"), target.client("autoscaling")

    def phase(name: str, began: float) -> None:
        result.phases[name] = round(time.monotonic() - began, 1)

    try:
        # before anything is swept or launched: this machine's lock, then the one across machines
        with env_lock(env), bake_lock(target, env_settings.app_name, env, lock_minutes(lock_expiry, timeout_s),
                                      take_over_lock) as lock:
            now = datetime.now(timezone.utc)
            stamp = now.strftime("%Y%m%d%H%M%S")
            # stamped to the second: two machines' (or two clouds') bakes may start in the same one
            name = result.build_name = f"{names.project()}-bake-{env}-{stamp}-{secrets.token_hex(3)}"
            owner = RunOwner.start(names.project(), env_settings.app_name, env, name, lock_path(env), timeout_s, now)
            began = time.monotonic()
            swept = leftovers.sweep(ec2, target.local, owner, state_dir(), lock_path(env), now)
            result.leftovers_removed, result.leftovers_failed = swept.removed, swept.failed
            if swept.removed:
                print(f"[{env}] removed what earlier bakes of {env} left: {'; '.join(swept.removed)}", flush=True)
            if swept.failed:
                print(f"[{env}] could not remove what earlier bakes left: {'; '.join(swept.failed)}", flush=True)
            phase("leftovers", began)
            interrupt.check("the build host")
            workdir = state_dir() / "bake" / f"{env}-{stamp}"
            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            variables = {**packer_variables(target, env_settings, workdir, stamp), **owner.packer_variables()}
            began = time.monotonic()
            with build_host(target, env_settings, owner, ec2, workdir) as reach, env_settings.vars_file(workdir):
                phase("build_host", began)
                container = reach.pop("local_container", "")
                variables.update(reach)
                guard = ImdsGuard(ec2, f"{env_settings.app_name}-{env}-{stamp}", run=owner.run)
                guard.start()
                began = time.monotonic()
                try:
                    interrupt.check("Packer")
                    result.packer_log = str(workdir / "packer.log")
                    # The image checks (packer/tests) run inside the build: failing them fails Packer.
                    artifact = packer_build.build(settings.var_file(env), variables,
                                                  packer_env(target), env, workdir / "manifest.json",
                                                  workdir / "packer.log", timeout_s)
                except packer_build.PackerError as exc:
                    log = workdir / "packer.log"
                    if interrupt.requested() or not packer_log.stopped_in_image_checks(log):
                        raise
                    result.validation = "failed"
                    raise BakeError(f"image checks failed on the build host; no AMI was made ({log}):\n"
                                    + packer_log.failed_check_lines(log)) from exc
                finally:
                    guard.stop.set()
                phase("packer", began)
                result.ami_id, result.ami_name = artifact.ami_id, artifact.ami_name
                began = time.monotonic()
                outcome = validate.Outcome(True, "image checks passed on the build host")
                if env_settings.nodejs_version == "auto":
                    result.nodejs_version = registry.record_nodejs_version(ec2, artifact.ami_id,
                                                                           workdir / NODE_VERSION_REPORT)
                    if not result.nodejs_version:
                        outcome = validate.Outcome(False, "nodejs_version auto: the image checks reported no version")
                registry.describe(ec2, artifact.ami_id, env_settings.app_name, env, env_settings.app_revision,
                                  result.nodejs_version or env_settings.nodejs_version)
                if container:
                    outcome = validate.commit_and_boot(container, target.local_image(artifact.ami_id), env_settings.app)
                if outcome.ok and not guard.enforced():
                    outcome = validate.Outcome(False, "IMDSv2 was not required on the build instance")
                if outcome.ok and not registry.require_imds_v2(ec2, artifact.ami_id):
                    outcome = validate.Outcome(False, f"{artifact.ami_id} does not carry ImdsSupport=v2.0")
                phase("validate", began)
            result.validation = "passed" if outcome.ok else "failed"
            if not outcome.ok:
                registry.mark_failed(ec2, artifact.ami_id, outcome.detail.strip().splitlines()[-1])
                validate.remove_local_image(target, artifact.ami_id)
                raise BakeError(f"validation failed; {artifact.ami_id} deregistered, not promoted:\n{outcome.detail}")
            interrupt.check("promotion")  # the AMI stays unvalidated: the next bake's pruning removes it
            lock.require(f"promoting {artifact.ami_id} (nothing promoted)")
            result.ssm_parameter = registry.promote(ec2, ssm, artifact.ami_id, env_settings.app_name, env)
            result.promoted = True
            began = time.monotonic()
            plan = registry.plan_prune(ec2, autoscaling, env_settings.app_name, env, keep)
            if not prune_dry_run:
                lock.require("pruning (nothing pruned)")
                registry.apply_prune(ec2, plan)
                for ami_id in plan.remove:
                    validate.remove_local_image(target, ami_id)
            result.pruned = plan.remove
            phase("prune", began)
    except (BakeError, BuildHostError, packer_build.PackerError, BotoCoreError, ClientError,
            subprocess.SubprocessError, interrupt.Stopped) as exc:
        stopped = interrupt.requested()
        result.error = str(exc) if not stopped or isinstance(exc, interrupt.Stopped) else f"stopped by {stopped}: {exc}"
    finally:
        result.duration_s = round(time.monotonic() - start, 1)
    return result


def summary_table(results: list[EnvResult], prune_dry_run: bool) -> str:
    pruned = "would prune" if prune_dry_run else "pruned"
    rows = [("environment", "AMI", "duration s", "validation", "promoted", pruned)]
    for r in results:
        rows.append((r.env, r.ami_id or "-", f"{r.duration_s:.0f}", r.validation, "yes" if r.promoted else "no",
                     ", ".join(r.pruned) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def extra_vars(given: list[str]) -> dict[str, Any]:
    """`-e NAME=VALUE` (a string) and `-e @FILE` (a YAML or JSON mapping), as ansible-playbook
    takes them, later ones winning; they override the inventory's variables."""
    found: dict[str, Any] = {}
    for item in given:
        if item.startswith("@"):
            try:
                loaded = yaml.safe_load(Path(item[1:]).read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise settings.BakeConfigError(f"-e {item}: cannot read it: {exc}") from exc
            if not isinstance(loaded, dict):
                raise settings.BakeConfigError(f"-e {item} holds no mapping of variable names to values")
            found.update(loaded)
            continue
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise settings.BakeConfigError(f"-e {item!r} is not NAME=VALUE with a variable name: "
                                           "give it as -e app_source_version=v1.2.0 or -e @vars.yml")
        found[name] = value
    return found


def run(args: argparse.Namespace) -> int:
    """The whole job; the report is written in every outcome, a failure notifies (--notify-topic)."""
    report = run_report.RunReport(Path(args.report) if args.report else run_report.default_path(),
                                  envs=list(dict.fromkeys(args.env or [])), target=args.target,
                                  prune_dry_run=args.prune_dry_run)
    try:
        topic = notify.topic_arn(args.notify_topic)  # before anything else: a bad one would hide failures
    except BakeError as exc:
        print(f"bake: {exc}\nbake: nothing was launched", file=sys.stderr)
        report.end(run_report.PREFLIGHT_FAILED, 2, str(exc))
        report.write()
        print(f"report: {report.path}")
        return 2
    report.write()  # "running": an earlier run's report is gone from here on
    local = args.target == "local"
    target: Target | None = None

    def notify_and_write() -> None:
        report.write()  # first: the message names it, and publishing may take a while
        notify.send(report, topic, args.notify_always, lambda: target or resolve_target(local))
        if report.notification:
            report.write()
        print(f"report: {report.path}")

    try:
        with interrupt.stop_signals():
            try:
                overrides = {**extra_vars(args.extra_vars or []),
                             **({"app_source_version": args.app_revision} if args.app_revision else {})}
                lock_expiry = lock_minutes(args.lock_minutes, args.timeout)  # a bad one launches nothing
                target, loaded = preflight(args.env or [], local, args.keep, overrides,
                                           args.ssh_cidr, args.ssh_interface, args.check_permissions)
            except (BakeError, settings.BakeConfigError, packer_build.PackerError) as exc:
                print(f"bake: {exc}\nbake: nothing was launched", file=sys.stderr)
                report.end(run_report.PREFLIGHT_FAILED, 2, str(exc))
                notify_and_write()
                return 2
            warning = notify.scope_warning(topic, target.region, {s.app_name for s in loaded.values()})
            if warning:
                print(f"bake: warning: {warning}", file=sys.stderr)
            for env_settings in loaded.values():
                if env_settings.note:
                    print(f"[{env_settings.env}] {env_settings.note}", flush=True)
            with ThreadPoolExecutor(max_workers=len(loaded)) as pool:
                results = list(pool.map(lambda s: bake_env(target, s, args.keep, args.prune_dry_run, args.timeout,
                                                           lock_expiry, args.take_over_lock),
                                        loaded.values()))
            stopped_by, stopped_code = interrupt.requested(), interrupt.exit_code()
    except Exception as exc:  # a bug: the report and the message still tell of the failed run
        report.end(run_report.FAILED, 1, f"the bake crashed: {type(exc).__name__}: {exc}")
        notify_and_write()
        raise
    print(summary_table(results, args.prune_dry_run))
    for r in results:
        if r.error:
            print(f"bake {r.env}: FAILED: {r.error}", file=sys.stderr)
    report.results = [asdict(r) for r in results]
    if stopped_by:
        report.end(run_report.STOPPED, stopped_code, f"stopped by {stopped_by}")
    elif all(r.ok for r in results):
        report.end(run_report.OK, 0)
    else:
        report.end(run_report.FAILED, 1, f"{sum(not r.ok for r in results)} of {len(results)} environments failed")
    notify_and_write()
    return report.exit_code or 0


def prune(args: argparse.Namespace) -> int:
    """`nodestack prune`: the bake's pruning step on its own."""
    if args.keep < 1:
        print(f"prune: --keep {args.keep} is invalid: keep at least 1 validated AMI per environment", file=sys.stderr)
        return 2
    try:
        target = resolve_target(args.target == "local").identified()  # once, for each environment's lock
        ec2, autoscaling = target.client("ec2"), target.client("autoscaling")
        for env in args.env or settings.ENVIRONMENTS:
            app = settings.load(env, target.local).app_name
            with env_lock(env), bake_lock(target, app, env, PRUNE_MINUTES, args.take_over_lock) as lock:
                plan = registry.plan_prune(ec2, autoscaling, app, env, args.keep)
                if not args.dry_run:
                    lock.require("pruning (nothing pruned)")
                    registry.apply_prune(ec2, plan)
                    for ami_id in plan.remove:
                        validate.remove_local_image(target, ami_id)
            verb = "would remove" if args.dry_run else "removed"
            shared = ", ".join(f"{ami} (shared with {whom})" for ami, whom in plan.shared.items())
            print(f"{env}: keep {', '.join(plan.keep) or '-'}; in use {', '.join(plan.in_use) or '-'}; "
                  f"kept {shared or '-'}; {verb} {', '.join(plan.remove) or 'nothing'}")
    except (BakeError, settings.BakeConfigError, BotoCoreError, ClientError) as exc:
        print(f"prune: {exc}", file=sys.stderr)
        return 2
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bake", help="bake, validate, promote and prune golden AMIs (dev, prod)")
    parser.add_argument("--env", action="append", choices=settings.ENVIRONMENTS, help="repeatable: dev, prod")
    parser.add_argument("--target", choices=["local", "aws"], default="local",
                        help="local: the local cloud and a local build container (default); aws: real AWS")
    parser.add_argument("--keep", type=int, default=DEFAULT_KEEP,
                        help=f"validated AMIs kept per environment (default {DEFAULT_KEEP}), besides AMIs in use")
    parser.add_argument("--prune-dry-run", action="store_true", help="show what pruning would remove; remove nothing")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds one environment's Packer build may take (default {DEFAULT_TIMEOUT_S})")
    parser.add_argument("--app-revision", default=None, help="bake this app revision instead of the inventory's")
    parser.add_argument("--report", default=None, metavar="FILE",
                        help="write the JSON report here (default .state/bake/report.json), e.g. for CI to keep")
    parser.add_argument("-e", "--extra-var", dest="extra_vars", action="append", metavar="NAME=VALUE|@FILE",
                        help="repeatable: playbook variables over the inventory's, as ansible-playbook -e "
                             "(e.g. -e app_source_version=v1.2.0, -e @vars.yml); secrets belong in Vault")
    parser.add_argument("--ssh-cidr", action="append", default=None,
                        help=f"--target aws: the network allowed to SSH to the build host, such as the runner's "
                             f"address/32 (repeatable; at least /{SSH_CIDR_MIN_PREFIX}; or set {SSH_CIDRS_ENV})")
    parser.add_argument("--ssh-interface", choices=SSH_INTERFACES, default="public_ip",
                        help="--target aws: reach the build host on its public or (from inside its VPC) "
                             "private address")
    parser.add_argument("--notify-topic", default=None, metavar="ARN",
                        help=f"SNS topic told when the bake fails, preflight included (or set {notify.TOPIC_ENV}); "
                             "the bake's policy allows topics named <app>-... in its region")
    parser.add_argument("--notify-always", action="store_true", help="with --notify-topic: tell it of a success too")
    parser.add_argument("--no-permission-check", dest="check_permissions", action="store_false",
                        help="skip simulating the bake's calls as the caller (policies/bake.yml) before it starts; "
                             "only for a caller that may not simulate its own permissions")
    parser.add_argument("--lock-minutes", type=int, default=None, metavar="MINUTES",
                        help="how long the bake's lock in SSM (/<app>/<env>/lock/bake) holds if the bake is killed "
                             "(default and least: --timeout and an hour)")
    parser.add_argument(TAKE_OVER_FLAG, action="store_true",
                        help="take the bake's lock in SSM even from a live holder: only when that bake is known dead")
    parser.set_defaults(func=run)

    pruner = sub.add_parser("prune", help="deregister old AMIs: keep the newest N validated ones and any in use")
    pruner.add_argument("--env", action="append", choices=settings.ENVIRONMENTS, help="repeatable (default both)")
    pruner.add_argument("--target", choices=["local", "aws"], default="local")
    pruner.add_argument("--keep", type=int, default=DEFAULT_KEEP)
    pruner.add_argument("--dry-run", action="store_true", help="show what would be removed; remove nothing")
    pruner.add_argument(TAKE_OVER_FLAG, action="store_true",
                        help="take the bake's lock in SSM even from a live holder: only when that bake is known dead")
    pruner.set_defaults(func=prune)
