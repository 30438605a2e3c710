"""Every inventory parses and every playbook passes --syntax-check against it (no AWS call)."""

from __future__ import annotations

import json
import subprocess

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
