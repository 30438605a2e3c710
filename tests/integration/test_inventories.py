"""Every inventory parses and every playbook passes --syntax-check against it; the shipped dev and
prod inventories are refused by preflight until the app's repository is set (no AWS call)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_inventory_defines_the_environment(env: str) -> None:
    out = subprocess.run([str(BIN / "ansible-inventory"), "-i", f"inventories/{env}", "--host", "localhost"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    hostvars = json.loads(out)
    assert hostvars["stack_env"] == env
    assert ("aws_endpoint_url" in hostvars) == (env == "local")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_site_syntax_checks_against_real_aws_inventories(env: str) -> None:
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", f"inventories/{env}", "--syntax-check", "site.yml"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def _preflight(inventory: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """preflight.yml with every AWS call sent to a closed loopback port (nothing leaves this machine)."""
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", inventory, "playbooks/preflight.yml"],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_preflight_refuses_the_shipped_inventory_until_the_app_repository_is_set(env: str, tmp_path: Path) -> None:
    result = _preflight(f"inventories/{env}", tmp_path)
    assert result.returncode != 0
    assert f"app_source_repo is not set in {REPO}/inventories/{env}/group_vars/app_servers.yml" in result.stdout

    inventory = tmp_path / env
    shutil.copytree(REPO / "inventories" / env, inventory)
    app_servers = inventory / "group_vars" / "app_servers.yml"
    text = app_servers.read_text()
    app_servers.write_text(text.replace('app_source_repo: ""', "app_source_repo: git@github.com:acme/app.git"))
    result = _preflight(str(inventory), tmp_path)
    assert "Check the app's repository is set" in result.stdout
    assert "app_source_repo is not set" not in result.stdout
