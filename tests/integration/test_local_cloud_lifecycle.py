"""`nodestack local up|down|status` as a user runs them, each in its own state dir and port."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nodestack.local_cloud import ami_images, base_image, server
from nodestack.local_cloud.ami_images import ami_image
from nodestack.local_cloud.instances import CLOUD_LABEL, INSTANCE_LABEL, podman
from nodestack.local_cloud.podman_cli import cloud_network
from nodestack.paths import free_port
from tests.conftest import cli, client


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


def _containers(port: str) -> dict[str, bool]:
    """This cloud's containers: instance id -> running."""
    listed = podman("ps", "-a", "--filter", f"label={CLOUD_LABEL}={port}", "--format", "json").stdout
    return {c["Labels"][INSTANCE_LABEL]: c["State"] == "running" for c in json.loads(listed or "[]")}


def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.3)


@pytest.mark.slow
def test_instances_follow_the_api_and_a_crashed_cloud_is_cleaned_up(cli_env: dict[str, str]) -> None:
    assert cli("local", "up", env=cli_env).returncode == 0
    port = cli_env["NODESTACK_LOCAL_PORT"]
    ec2 = client(f"http://127.0.0.1:{port}", "ec2")
    builder = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=builder, Name=f"lifecycle-{port}")["ImageId"]
    podman("tag", base_image.IMAGE, ami_image(port, ami))  # an AMI with a local image (no app: systemd only)
    try:
        api_only = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        instance = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        _until(lambda: _containers(port).get(instance) is True, "container running")

        def rows() -> dict[str, dict[str, object]]:
            return {row["id"]: row
                    for row in json.loads(cli("local", "status", "--json", env=cli_env).stdout)["instances"]}
        _until(lambda: bool(rows().get(instance, {}).get("container")), "status names the container")  # next tick
        assert rows()[api_only]["data_plane"] == "api-only" and rows()[api_only]["container"] is None
        assert builder not in _containers(port) and api_only not in _containers(port)
        ec2.stop_instances(InstanceIds=[instance])
        _until(lambda: _containers(port).get(instance) is False, "container stopped")
        ec2.start_instances(InstanceIds=[instance])
        _until(lambda: _containers(port).get(instance) is True, "container started again")
        ec2.terminate_instances(InstanceIds=[instance])
        _until(lambda: instance not in _containers(port), "container removed")
        survivor = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        _until(lambda: _containers(port).get(survivor) is True, "container running")
        os.killpg(_pid(cli_env), signal.SIGKILL)  # a crash: nothing cleans up
        time.sleep(0.5)
        assert survivor in _containers(port)
        assert cli("local", "up", env=cli_env).returncode == 0  # cleans what the crash left
        assert _containers(port) == {}
        _until(lambda: not _exists(ami_image(port, ami)), "the crashed endpoint's AMI image removed")
        podman("tag", base_image.IMAGE, ami_image(port, ami))  # as if baked on the new endpoint
        assert cli("local", "down", env=cli_env).returncode == 0
        assert podman("network", "exists", f"nodestack-{port}", check=False).returncode != 0
        assert not _exists(ami_image(port, ami))
    finally:
        podman("rmi", ami_image(port, ami), check=False)


def _exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


@pytest.fixture
def another_cloud() -> Iterator[str]:
    """A running local cloud as a starting one sees it: its endpoint answers the ping on loopback."""
    class Ping(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200 if self.path == server.PING_PATH else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    endpoint = ThreadingHTTPServer((server.HOST, 0), Ping)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    try:
        yield str(endpoint.server_address[1])
    finally:
        endpoint.shutdown()
        endpoint.server_close()


def test_a_starting_cloud_removes_the_images_of_clouds_that_ended(cli_env: dict[str, str], another_cloud: str) -> None:
    """Each bake commits a 1.2 GB image for an AMI that ends with its endpoint: the images of
    ended clouds (and of the old unnamed kind) go; a running cloud's stay, and so do those of a
    cloud that does not answer but still has its network (busy, or crashed: its own next start
    or `down` removes them)."""
    ami = f"ami-{secrets.token_hex(8)}"
    silent = str(free_port())
    ended, running, quiet = (ami_image(cloud, ami) for cloud in (str(free_port()), another_cloud, silent))
    unnamed = f"{ami_images.REPOSITORY}:{ami}"
    podman("network", "create", cloud_network(silent))
    for image in (ended, running, quiet, unnamed):
        podman("tag", base_image.IMAGE, image)
    try:
        assert cli("local", "up", env=cli_env).returncode == 0
        _until(lambda: not _exists(ended) and not _exists(unnamed), "the ended clouds' images removed")
        assert _exists(running) and _exists(quiet)
        assert _exists(base_image.IMAGE)  # they were its tags: the image itself stays
    finally:
        for image in (ended, running, quiet, unnamed):
            podman("rmi", image, check=False)
        podman("network", "rm", "-f", cloud_network(silent), check=False)
