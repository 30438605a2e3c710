"""The app_config role's reader against the local endpoint's SSM: every parameter directly
under the path becomes one line of a root-only environment file; names are printed, values
never; bad names, bad paths and an SSM that does not answer are clear errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nodestack.local_cloud import server
from tests.conftest import client

READER = Path(__file__).resolve().parents[2] / "roles/app_config/files/nodestack-app-config"
SECRET = 'p@ss "word" $HOME `id` \\n back\\slash\nsecond line ünïcode'


def run(path: str, output: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(READER), "--path", path, "--output", str(output), *extra],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def reader_env(url: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}


def parse_env_file(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile rules for the double-quoted form the reader writes."""
    values: dict[str, str] = {}
    i = 0
    while i < len(text):
        if text[i] == "#":
            i = text.index("\n", i) + 1
            continue
        name, i = text[i:text.index("=", i)], text.index("=", i) + 2  # past ="
        value = []
        while text[i] != '"':
            if text[i] == "\\" and text[i + 1] in '\\"$`':
                i += 1
            value.append(text[i])
            i += 1
        values[name] = "".join(value)
        i += 2  # past "\n
    return values


def test_parameters_become_a_root_only_environment_file(local_cloud: server.Endpoint, tmp_path: Path) -> None:
    ssm = client(local_cloud.url, "ssm")
    base = "/reader-app/dev/config"
    ssm.put_parameter(Name=f"{base}/API_SECRET", Value=SECRET, Type="SecureString")
    ssm.put_parameter(Name=f"{base}/GREETING", Value="hello", Type="String")
    ssm.put_parameter(Name=f"{base}/HOSTS", Value="a,b", Type="StringList")
    ssm.put_parameter(Name=f"{base}/nested/IGNORED", Value="x", Type="String")  # not directly under the path
    ssm.put_parameter(Name="/reader-app/prod/config/OTHER_ENV", Value="x", Type="String")
    for n in range(12):  # more than one page (GetParametersByPath gives at most 10)
        ssm.put_parameter(Name=f"{base}/SETTING_{n:02d}", Value=str(n), Type="String")
    output = tmp_path / "environment"
    result = run(f"{base}/", output, reader_env(local_cloud.url), "--region", "us-east-1")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    values = parse_env_file(output.read_text())
    assert values == {"API_SECRET": SECRET, "GREETING": "hello", "HOSTS": "a,b",
                      **{f"SETTING_{n:02d}": str(n) for n in range(12)}}
    assert "read 15 parameter(s)" in result.stdout and "API_SECRET" in result.stdout
    assert "p@ss" not in result.stdout + result.stderr and "hello" not in result.stdout + result.stderr


def test_a_name_that_is_no_variable_name_is_refused_naming_it(local_cloud: server.Endpoint, tmp_path: Path) -> None:
    ssm = client(local_cloud.url, "ssm")
    ssm.put_parameter(Name="/reader-bad/dev/config/database-url", Value="x", Type="String")
    output = tmp_path / "environment"
    result = run("/reader-bad/dev/config/", output, reader_env(local_cloud.url), "--region", "us-east-1")
    assert result.returncode == 1
    assert "/reader-bad/dev/config/database-url cannot be an environment variable name" in result.stderr
    assert not output.exists()


def test_an_empty_path_gives_an_empty_configuration(local_cloud: server.Endpoint, tmp_path: Path) -> None:
    output = tmp_path / "environment"
    output.write_text('OLD="value"\n')
    result = run("/reader-none/dev/config/", output, reader_env(local_cloud.url), "--region", "us-east-1")
    assert result.returncode == 0, result.stderr
    assert parse_env_file(output.read_text()) == {}
    assert "read 0 parameter(s)" in result.stdout


@pytest.mark.parametrize("path", ["reader/dev/config/", "/reader/dev/config", "/reader/$(id)/config/"])
def test_a_bad_path_is_refused(path: str, tmp_path: Path) -> None:
    result = run(path, tmp_path / "environment", reader_env("http://127.0.0.1:9"))
    assert result.returncode == 1 and "is not an SSM path" in result.stderr


def test_an_ssm_that_never_answers_fails_after_the_wait(tmp_path: Path) -> None:
    result = run("/reader/dev/config/", tmp_path / "environment", reader_env("http://127.0.0.1:9"),
                 "--region", "us-east-1", "--wait", "3")
    assert result.returncode == 1
    assert "cannot read /reader/dev/config/ from SSM after" in result.stderr
    assert not (tmp_path / "environment").exists()
