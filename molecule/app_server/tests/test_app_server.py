"""The full app server: after a container restart the app answers on the host's loopback."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

FIXTURE = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".state/git-fixture"
REVISIONS = json.loads((FIXTURE / "revisions.json").read_text())
INSTANCE = "app_server-instance"
# The container's own sshd on its loopback, its host key pinned from the key files sshd uses.
PIN = ("for key in $(sshd -T | awk '/^hostkey /{print $2}'); "
       "do echo \"127.0.0.1 $(ssh-keygen -y -f $key)\"; done > /root/known_hosts")
SSH = "ssh -i /root/test_key -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/root/known_hosts"
HEALTH_URL = f"http://127.0.0.1:{os.environ.get('NODESTACK_APP_SERVER_PORT', '3000')}/health"


def get_health(deadline_s: float = 90) -> tuple[int, dict[str, object]]:
    """GET /health on the published loopback port until it answers or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(HEALTH_URL, timeout=3) as response:  # noqa: S310 - loopback only
                return response.status, json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.fixture(scope="module")
def after_restart() -> tuple[int, dict[str, object]]:
    """Restart the container, so the app can only be up through the boot path."""
    subprocess.run(["podman", "restart", "--time", "5", INSTANCE], check=True, capture_output=True, timeout=120)
    return get_health()


def test_health_answers_on_the_host_after_a_restart(after_restart) -> None:  # type: ignore[no-untyped-def]
    status, body = after_restart
    assert status == 200
    assert body["status"] == "ok" and body["version"] == REVISIONS["v1.0.0"]
    assert isinstance(body["uptime"], float) and body["uptime"] < 120


def test_pinned_node_and_enabled_unit(host, after_restart) -> None:  # type: ignore[no-untyped-def]
    assert host.check_output("node --version") == "v22.11.0"
    assert host.service("nodeapp").is_enabled and host.service("nodeapp").is_running
    assert host.check_output("grep ^AUTO_START_MODE= /etc/default/nodeapp") == "AUTO_START_MODE=baked"


def test_sshd_effective_config_is_hardened(host) -> None:  # type: ignore[no-untyped-def]
    config = host.check_output("sshd -T")
    assert "permitrootlogin no" in config and "passwordauthentication no" in config


def test_team_member_logs_in_and_has_sudo(host) -> None:  # type: ignore[no-untyped-def]
    host.run("install -m 0600 /srv/fixture/deploy_key /root/test_key")
    host.run(PIN)
    assert host.check_output(f"{SSH} alice@127.0.0.1 sudo -n id -un") == "root"


def test_baked_server_keeps_no_deploy_key_or_git_ssh_command(host) -> None:  # type: ignore[no-untyped-def]
    """baked mode never fetches again: the checkout went through the deploy key, which is gone."""
    assert host.check_output("find /srv /var/lib /home /root -path '*/.ssh/deploy_key'") == ""
    assert host.run("git config -f /srv/nodeapp/app/.git/config --get core.sshCommand").rc == 1
    assert not host.file("/etc/systemd/system/nodeapp-fetch.service").exists


def test_the_cloudwatch_agent_would_ship_the_apps_journal_to_its_log_group(host) -> None:  # type: ignore[no-untyped-def]
    """aws_agents_install=false here (AWS downloads): the configuration is what an AWS image runs."""
    config = json.loads(host.file("/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json").content_string)
    assert config["agent"]["run_as_user"] == "cwagent"
    assert config["logs"]["logs_collected"]["journald"]["collect_list"] == [
        {"log_group_name": "/nodeapp/molecule", "log_stream_name": "{instance_id}", "units": ["nodeapp"]}]
    assert not host.package("amazon-cloudwatch-agent").is_installed
