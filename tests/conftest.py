"""Shared fixtures: a local cloud of the tests' own, on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.config import Config
from moto import mock_aws

from nodestack.local_cloud import server
from nodestack.paths import free_port

REPO = Path(__file__).resolve().parents[1]
# A requested ACM certificate stays PENDING_VALIDATION (moto issues it after 60 s by default):
# the tests' local clouds inherit this, so a slow run never sees it issued.
os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "3600")
# The local inventory's settings, which the tests' stacks are built with.
LOCAL_SETTINGS = yaml.safe_load((REPO / "inventories" / "local" / "group_vars" / "all.yml").read_text())
BIN = Path(sys.executable).parent  # the venv's ansible-playbook etc., whatever PATH says
# scripts/test.sh runs the modules on two workers (pytest-xdist, --dist loadfile, in this
# order): each worker starts with two modules, 1st+3rd and 2nd+4th, so the longest ones
# (each with a local cloud of its own) are paired to end together; the rest fill in.
LONGEST_FIRST = ("test_stack_lifecycle", "test_bake", "test_site_playbook", "test_data_plane",
                 "test_deployer_permissions", "test_security_stack")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.stem
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)  # stable: the rest keep their order


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `nodestack ...` as a user would, in a separate process."""
    return subprocess.run([sys.executable, "-m", "nodestack.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a CLI run with its own state dir and port; stops what it started."""
    env = {**os.environ, "NODESTACK_STATE_DIR": str(tmp_path / "state"), "NODESTACK_LOCAL_PORT": str(free_port())}
    yield env
    cli("local", "down", env=env)


@contextmanager
def using_state(path: Path) -> Iterator[None]:
    """Point the server functions at another state directory for the duration."""
    previous = os.environ.get("NODESTACK_STATE_DIR")
    os.environ["NODESTACK_STATE_DIR"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("NODESTACK_STATE_DIR", None)
        else:
            os.environ["NODESTACK_STATE_DIR"] = previous


@contextmanager
def endpoint_in(state: Path, fixes: bool = True, enforce_iam: bool = False) -> Iterator[server.Endpoint]:
    """A local endpoint of the tests' own, stopped afterwards."""
    with using_state(state):
        endpoint, _ = server.up(port=free_port(), fixes=fixes, enforce_iam=enforce_iam)
    try:
        yield endpoint
    finally:
        with using_state(state):
            server.down()


@pytest.fixture(scope="session")
def test_fixtures() -> Path:
    """.state/ with what scripts/test-fixtures.sh makes (the Node.js mirror, the git remote, the
    team apps), made once per machine: the script locks and skips what is current, so each
    worker asks for it rather than relying on another module having run first."""
    subprocess.run([str(REPO / "scripts/test-fixtures.sh")], check=True, capture_output=True, timeout=900)
    return REPO / ".state"


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.Endpoint]:
    """One fixed local cloud for the session, with the project's fixes applied."""
    with endpoint_in(tmp_path_factory.mktemp("cloud")) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def aws_env(local_cloud: server.Endpoint) -> dict[str, str]:
    """Process environment pointing boto3, Ansible and the CLI at the session's local cloud."""
    return env_for(local_cloud)


def env_for(endpoint: server.Endpoint) -> dict[str, str]:
    """Process environment pointing boto3, Ansible and the CLI at a local endpoint (and its
    state directory, where the CLI and verification find its DNS server)."""
    return {**os.environ, **server.environment(endpoint.port), "NODESTACK_STATE_DIR": str(endpoint.request_log.parent),
            "NODESTACK_LOCAL_PORT": str(endpoint.port)}


def client(url: str, service: str, keys: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """boto3 client for a local endpoint (with keys: as an identity of an IAM-enforcing one); no
    retries, so an emulator error shows at once."""
    keys = keys or {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return boto3.client(service, endpoint_url=url, region_name=server.DEFAULT_REGION,
                        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
                        config=Config(retries={"max_attempts": 1}))


def make_image(local_cloud: server.Endpoint, validated: str, keys: dict[str, str] | None = None) -> str:
    """An AMI as the bake leaves it (instance -> CreateImage, tagged)."""
    ec2 = client(local_cloud.url, "ec2", keys)
    instance = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=instance, Name=f"nodeapp-dev-test-{validated}-{instance}")["ImageId"]
    ec2.modify_image_attribute(ImageId=ami, ImdsSupport={"Value": "v2.0"})  # as the bake registers them
    ec2.create_tags(Resources=[ami], Tags=[{"Key": "validated", "Value": validated},
                                           {"Key": "AppRevision", "Value": "v1.0.0"}])
    return str(ami)


@pytest.fixture(scope="session")
def promoted_ami(local_cloud: server.Endpoint) -> str:
    """What `nodestack bake --env dev` publishes; the local inventory deploys dev's AMI."""
    ami = make_image(local_cloud, "true")
    client(local_cloud.url, "ssm").put_parameter(Name="/nodeapp/dev/ami/latest", Value=ami, Type="String",
                                                 Overwrite=True)
    return ami


@pytest.fixture
def moto_in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's backends in this process (no endpoint), with dummy credentials."""
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield
