"""Checks every image passes before Packer takes it (packer/scripts/validate-build-host.sh).

The same checks as molecule/app_server, against the build host over SSH with sudo. What to
expect comes from the template's variables, which the bake job takes from the settings the
roles apply: NODESTACK_EXPECT_NODE, NODESTACK_EXPECT_REVISION and NODESTACK_APP_* (the
app's unit, account, checkout, port and health check). finalize-image.sh then checks that
no keys or history are left. With nodejs_version auto, the version the app runs is written
to NODESTACK_NODE_REPORT, for the bake to tag on the AMI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

NODE = os.environ["NODESTACK_EXPECT_NODE"]
REVISION = os.environ["NODESTACK_EXPECT_REVISION"]
SERVICE = os.environ["NODESTACK_APP_SERVICE"]
USER = os.environ["NODESTACK_APP_USER"]
APP_DIR = os.environ["NODESTACK_APP_DIR"]
HEALTH_URL = f"http://127.0.0.1:{os.environ['NODESTACK_APP_PORT']}{os.environ['NODESTACK_APP_HEALTH_PATH']}"
HEALTH_STATUS = os.environ["NODESTACK_APP_HEALTH_STATUS"]
EMPTY_CONFIG = Path(__file__).with_name("empty-config.conf")
# The status only: an error status is an answer too (urllib raises it).
STATUS = ("python3 -c 'import sys, urllib.error, urllib.request\n"
          "try: print(urllib.request.urlopen(sys.argv[1], timeout=5).status)\n"
          "except urllib.error.HTTPError as e: print(e.code)' " + shlex.quote(HEALTH_URL))


def test_the_app_runs_the_pinned_node(host) -> None:  # type: ignore[no-untyped-def]
    """The node on the app's unit's PATH: the one its start command runs."""
    environment = shlex.split(host.check_output(f"systemctl show -p Environment --value {shlex.quote(SERVICE)}"))
    path = next(item.split("=", 1)[1] for item in environment if item.startswith("PATH="))
    version = host.check_output(f"env PATH={shlex.quote(path)} node --version").removeprefix("v")
    if NODE != "auto":
        assert version == NODE
        return
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    Path(os.environ["NODESTACK_NODE_REPORT"]).write_text(version + "\n")


def test_unit_enabled_for_boot(host) -> None:  # type: ignore[no-untyped-def]
    assert host.service(SERVICE).is_enabled


def test_checkout_at_the_revision(host) -> None:  # type: ignore[no-untyped-def]
    git = f"runuser -u {shlex.quote(USER)} -- git -C {shlex.quote(APP_DIR)}"
    expected = host.check_output(f"{git} rev-parse {shlex.quote(REVISION + '^{commit}')}")
    assert host.check_output(f"{git} rev-parse HEAD") == expected


@pytest.fixture
def empty_configuration(host) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """With app_config, the app reads SSM before it starts: here, an empty configuration."""
    unit = f"{SERVICE}-config.service"
    if not host.file(f"/etc/systemd/system/{unit}").exists:
        yield
        return
    drop_in = f"/run/systemd/system/{unit}.d"
    put = host.run(f"install -d {shlex.quote(drop_in)} && cat > {shlex.quote(drop_in)}/50-bake-check.conf <<'END'\n"
                   f"{EMPTY_CONFIG.read_text()}END\nsystemctl daemon-reload")
    assert put.rc == 0, put.stderr
    try:
        yield
    finally:
        host.run(f"rm -rf {shlex.quote(drop_in)} && systemctl daemon-reload")


@pytest.mark.usefixtures("empty_configuration")
def test_healthy_after_a_restart_of_the_unit(host) -> None:  # type: ignore[no-untyped-def]
    restart = host.run(f"systemctl restart {shlex.quote(SERVICE)}")  # active only once healthy
    assert restart.rc == 0, host.run(f"journalctl -u {shlex.quote(SERVICE)} --no-pager -n 30 -o cat").stdout
    assert host.check_output(STATUS) == HEALTH_STATUS


AGENTS = os.environ.get("NODESTACK_EXPECT_AGENTS", "")
CLOUDWATCH_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"


@pytest.mark.skipif(not AGENTS, reason="aws_agents_cloudwatch is off: no CloudWatch agent")
def test_the_cloudwatch_agent_ships_the_apps_journal(host) -> None:  # type: ignore[no-untyped-def]
    """Its configuration on every image (the local cloud's too); the agents themselves, verified
    against AWS's keys, only on an AWS image (NODESTACK_EXPECT_AGENTS=installed)."""
    config = json.loads(host.file(CLOUDWATCH_CONFIG).content_string)
    assert config["agent"]["run_as_user"] == "cwagent"
    assert config["logs"]["logs_collected"]["journald"]["collect_list"] == [
        {"log_group_name": os.environ["NODESTACK_EXPECT_LOG_GROUP"], "log_stream_name": "{instance_id}",
         "units": [SERVICE]}]
    installed = AGENTS == "installed"
    for agent in ("amazon-cloudwatch-agent", "amazon-ssm-agent"):
        assert host.package(agent).is_installed == installed, agent
        if installed:
            assert host.service(agent).is_enabled, agent
    if installed:
        assert "systemd-journal" in host.user("cwagent").groups
