"""roles/app_build's installer on this machine, as an unprivileged account: which package
manager it picks, when it reinstalls, and how it refuses. (molecule/app_build deploys and
serves the same fixture apps through the roles.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

INSTALLER = REPO / "roles/app_build/files/nodestack-app-build"
FIXTURES = REPO / ".state/app-fixtures"
NODE_VERSION = "22.11.0"
NOBODY = 65534

Run = Callable[..., subprocess.CompletedProcess[str]]


def open_directory() -> Path:
    """A directory the unprivileged account can reach (pytest's own tmp is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="nodestack-app-build."))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def node_root(test_fixtures: Path) -> Iterator[Path]:
    """The pinned release with the npm and corepack it ships, from the tests' mirror."""
    dest = open_directory()
    name = f"node-v{NODE_VERSION}-linux-x64"
    with tarfile.open(test_fixtures / f"node-mirror/v{NODE_VERSION}/{name}.tar.gz") as tar:
        tar.extractall(dest, filter="tar")
    yield dest / name
    shutil.rmtree(dest)


@pytest.fixture
def workspace() -> Iterator[Path]:
    path = open_directory()
    yield path
    shutil.rmtree(path)


def checkout(workspace: Path, app: str) -> Path:
    """The fixture app at v1, owned by the unprivileged account that installs it."""
    dest = workspace / app
    subprocess.run(["git", "clone", "-q", "--branch", "v1", str(FIXTURES / f"{app}.git"), str(dest)],
                   check=True, capture_output=True, timeout=60)
    shutil.chown(workspace, NOBODY, NOBODY)
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(dest)], check=True)
    return dest


@pytest.fixture
def install(node_root: Path, workspace: Path) -> Run:
    def run(app_dir: Path, *extra: str, as_root: bool = False, **settings: str) -> subprocess.CompletedProcess[str]:
        values = {"APP_DIR": str(app_dir), "NODE": str(node_root / "bin/node"), "PACKAGE_MANAGER": "auto",
                  "BUILD_SCRIPT": "''", "REQUIRE_LOCKFILE": "false",
                  # this machine's registry proxy strips npm's signatures (see molecule/app_build)
                  "COREPACK_VERIFY": "false", **settings}
        settings_file = workspace / "settings"
        settings_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        prefix = [] if as_root else ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        return subprocess.run([*prefix, str(INSTALLER), str(settings_file), *extra], capture_output=True, text=True,
                              timeout=600, check=False, cwd=workspace,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(workspace),
                                   "NODE_EXTRA_CA_CERTS": os.environ.get("NODE_EXTRA_CA_CERTS", "")})
    return run


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_npm_installs_once_then_only_when_the_lockfile_changes(workspace: Path, install: Run) -> None:
    app = checkout(workspace, "express")
    assert last_line(install(app)) == "installed npm from package-lock.json"
    assert (app / "node_modules/express").is_dir()
    assert last_line(install(app)) == "unchanged"
    lock = json.loads((app / "package-lock.json").read_text())
    lock["name"] = "changed"
    (app / "package-lock.json").write_text(json.dumps(lock))
    assert last_line(install(app, "--check")) == "would install npm from package-lock.json"
    assert last_line(install(app)) == "installed npm from package-lock.json"


def test_yarn_berry_installs_plug_n_play_without_dev_dependencies(workspace: Path, install: Run,
                                                                   node_root: Path) -> None:
    app = checkout(workspace, "berry")
    assert last_line(install(app)) == "installed yarn from yarn.lock"
    probe = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(node_root / "bin/node"),
         "-r", "./.pnp.cjs", "-e", "console.log(require('ms')(3000)); require('is-number')"],
        cwd=app, capture_output=True, text=True, timeout=60, check=False)
    assert probe.stdout.strip() == "3s"
    assert "is-number" in probe.stderr  # dev dependency pruned


@pytest.mark.parametrize(("app", "expected"), [("yarn", "installed yarn from yarn.lock"),
                                                ("pnpm", "installed pnpm from pnpm-lock.yaml")])
def test_yarn_classic_and_pnpm_install_production_dependencies(workspace: Path, install: Run, node_root: Path,
                                                                app: str, expected: str) -> None:
    app_dir = checkout(workspace, app)
    assert last_line(install(app_dir)) == expected
    assert (app_dir / "node_modules/ms").exists()
    assert not (app_dir / "node_modules/is-number").exists()
    assert last_line(install(app_dir)) == "unchanged"


def test_nothing_is_written_where_nothing_is_needed(workspace: Path, install: Run) -> None:
    app = checkout(workspace, "express")
    (app / "package.json").write_text(json.dumps({"name": "bare", "version": "1.0.0", "main": "server.js"}))
    (app / "package-lock.json").unlink()
    assert last_line(install(app)) == "nothing to install"
    assert not (app / "node_modules").exists()


def test_no_lockfile_installs_ranges_with_a_warning_or_is_refused(workspace: Path, install: Run) -> None:
    app = checkout(workspace, "express")
    (app / "package-lock.json").unlink()
    refused = install(app, REQUIRE_LOCKFILE="true")
    assert refused.returncode != 0
    assert "has no lockfile" in refused.stderr and "app_build_require_lockfile is true" in refused.stderr
    result = install(app)
    assert last_line(result) == "installed npm"
    assert "warning" in result.stderr
    assert not (app / "package-lock.json").exists()  # the checkout stays as committed


@pytest.mark.parametrize(("settings", "message"), [
    ({"PACKAGE_MANAGER": "pnpm"}, "has package-lock.json but is set to install with pnpm"),
    ({"BUILD_SCRIPT": "compile"}, "app_build_script=compile is not a script"),
    ({"APP_DIR": "/nonexistent"}, "/nonexistent/package.json is missing"),
])
def test_bad_settings_are_refused_before_installing(workspace: Path, install: Run, settings: dict[str, str],
                                                     message: str) -> None:
    app = checkout(workspace, "express")
    result = install(app, **settings)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (app / "node_modules").exists()


def test_root_is_refused(workspace: Path, install: Run) -> None:
    app = checkout(workspace, "express")
    result = install(app, as_root=True)
    assert result.returncode != 0 and "not root" in result.stderr
    assert not (app / "node_modules").exists()
