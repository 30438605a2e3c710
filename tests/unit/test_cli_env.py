"""`nodestack local env` prints shell-safe exports; bad settings are named."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import cli


def test_env_is_evaluable_by_the_shell(cli_env: dict[str, str]) -> None:
    script = (f'eval "$({sys.executable} -m nodestack.cli local env)"; '
              'echo "$AWS_ENDPOINT_URL $AWS_REGION $CONTAINERS_CONF"')
    out = subprocess.run(["bash", "-c", script], env=cli_env, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == f"http://127.0.0.1:{cli_env['NODESTACK_LOCAL_PORT']}"
    assert out[1] == "us-east-1"
    assert out[2].endswith("config/containers.conf") and os.path.exists(out[2])


def test_bad_port_setting_is_named() -> None:
    result = cli("local", "up", env={**os.environ, "NODESTACK_LOCAL_PORT": "http"})
    assert result.returncode == 2
    assert "NODESTACK_LOCAL_PORT='http'" in result.stderr
