"""The sample app, run with the pinned Node.js from the test mirror on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodestack.paths import free_port
from tests.conftest import REPO

NODE_VERSION = "22.11.0"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, test_fixtures: Path) -> Path:
    """bin/node of the pinned release, from the local mirror the Molecule scenarios use."""
    name = f"node-v{NODE_VERSION}-linux-x64"
    dest = tmp_path_factory.mktemp("node")
    with tarfile.open(test_fixtures / f"node-mirror/v{NODE_VERSION}/{name}.tar.gz") as tar:
        tar.extract(f"{name}/bin/node", dest, filter="tar")
    return dest / name / "bin/node"


def start(node: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(node), str(REPO / "app/server.js")], env={"PATH": "/usr/bin:/bin", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def app(node: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    proc = start(node, PORT=str(port), HOST="127.0.0.1", APP_VERSION="test-rev")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=1).close()  # noqa: S310 - loopback only
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
    yield proc, url
    proc.kill()
    proc.wait()


def test_health_reports_version_and_uptime(app: tuple[subprocess.Popen[str], str]) -> None:
    _, url = app
    with urllib.request.urlopen(url + "/health") as response:  # noqa: S310 - loopback only
        assert response.status == 200 and response.headers["Content-Type"] == "application/json"
        body = json.loads(response.read())
    assert body["status"] == "ok" and body["version"] == "test-rev"
    assert isinstance(body["uptime"], (int, float)) and 0 <= body["uptime"] < 15


def test_root_answers_and_unknown_paths_are_404(app: tuple[subprocess.Popen[str], str]) -> None:
    _, url = app
    with urllib.request.urlopen(url + "/") as response:  # noqa: S310 - loopback only
        assert b"nodeapp test-rev" in response.read()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url + "/nope")  # noqa: S310 - loopback only
    assert missing.value.code == 404


def test_sigterm_is_a_clean_stop(app: tuple[subprocess.Popen[str], str]) -> None:
    proc, _ = app
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("port", ["abc", "0", "70000", "3000x"])
def test_bad_port_exits_non_zero_naming_it(node: Path, port: str) -> None:
    proc = start(node, PORT=port)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 2
    assert f"PORT={port} is invalid" in err


def test_version_defaults_to_the_git_revision(node: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "app"
    subprocess.run(["git", "clone", "-q", str(REPO / ".state/git-fixture/app.git"), str(checkout)], check=True)
    revisions = json.loads((REPO / ".state/git-fixture/revisions.json").read_text())
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", "v1.1.0"], check=True)
    port = free_port()
    proc = subprocess.Popen([str(node), "server.js"], cwd=checkout, stdout=subprocess.PIPE, text=True,
                            env={"PATH": os.environ["PATH"], "PORT": str(port), "HOST": "127.0.0.1"})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(f"nodeapp {revisions['v1.1.0']} listening")
    finally:
        proc.kill()
        proc.wait()
