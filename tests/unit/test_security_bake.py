"""Security review (issue 14) on the bake, without baking: credentials, Packer's settings,
the build host's SSH exposure and the playbook variables on disk."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nodestack.bake import settings, target
from nodestack.bake.settings import TEMPLATE

AWS = {"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token-123"}


@pytest.mark.parametrize("service", ["ec2", "ssm", "autoscaling", "sts"])
def test_every_client_carries_the_session_token(service: str) -> None:
    bake_target = target.Target(False, "us-east-1", AWS)
    credentials = bake_target.client(service)._request_signer._credentials  # what each request is signed with
    assert (credentials.access_key, credentials.token) == ("ASIAEXAMPLE", "token-123")


def test_packer_does_not_call_home() -> None:
    assert target.packer_env(target.Target(True, "us-east-1", {}))["CHECKPOINT_DISABLE"] == "1"


@pytest.mark.parametrize(("given", "message"), [
    ([], "no --ssh-cidr given: the build host's SSH port would be open to 0.0.0.0/0"),
    (["0.0.0.0/0"], "--ssh-cidr 0.0.0.0/0 is too broad"),
    (["0.0.0.0/1"], "--ssh-cidr 0.0.0.0/1 is too broad"),
    (["10.0.0.0/8"], "--ssh-cidr 10.0.0.0/8 is too broad"),
    (["2001:db8::/32"], "--ssh-cidr 2001:db8::/32 is too broad: give the runner's address or a network "
                        "of at least /48"),
    (["2001:db8:1::/48"], None),
    (["203.0.113.7"], None),
    (["203.0.113.7/24"], "--ssh-cidr 203.0.113.7/24 is invalid"),
])
def test_the_build_hosts_ssh_opens_to_the_runner_only(given: list[str], message: str | None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(target.SSH_CIDRS_ENV, raising=False)
    if message is None:
        assert target.ssh_cidrs(given) == given
        return
    with pytest.raises(target.BakeError, match=message.replace(".", r"\.").replace("/", r"/")):
        target.ssh_cidrs(given)


def _packer_validate(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    variables = {"env": "dev", "app_name": "nodeapp", "project": "nodestack", "build_timestamp": "1",
                 "git_revision": "x", "nodejs_version": "22.11.0",
                 "app_revision": "v1", "app_commit": "0" * 40, "playbook_vars_file": "/x", "manifest_path": "/m",
                 "build_known_hosts": "/k", "ssh_private_key_file": "", **extra}
    args = [arg for k, v in variables.items() for arg in ("-var", f"{k}={v}")]
    env = {**os.environ, "CHECKPOINT_DISABLE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["packer", "validate", *args, str(TEMPLATE)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("group", ["", "packer_temporary"])
def test_packer_launches_only_into_the_bakes_group(tmp_path: Path, group: str) -> None:
    """Without the bake's group Packer would make its own: untagged, and open to 0.0.0.0/0 by default."""
    result = _packer_validate(tmp_path, security_group_id=group)
    assert (result.returncode != 0
            and "security_group_id value must be the bake's group" in result.stdout + result.stderr)


def test_packer_accepts_the_bakes_group(tmp_path: Path) -> None:
    result = _packer_validate(tmp_path, security_group_id="sg-0123456789abcdef0")
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbook_vars_are_private_and_gone_after_the_build(tmp_path: Path) -> None:
    # a repository for AWS to clone; the Vault variable defined, so no Vault file is needed here
    env_settings = settings.load("dev", local=False, overrides={"app_source_repo": "git@github.com:acme/app.git",
                                                                "vault_app_source_deploy_key": ""})
    with env_settings.vars_file(tmp_path) as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["app_source_deploy_key"] == "{{ vault_app_source_deploy_key }}"
    assert not path.exists()
    with pytest.raises(RuntimeError), env_settings.vars_file(tmp_path) as path:
        raise RuntimeError("packer failed")
    assert not path.exists(), "a failed build leaves the variables behind"


def test_a_plaintext_private_key_is_refused() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    with pytest.raises(settings.BakeConfigError, match="app_source_deploy_key holds a private key in plain text"):
        settings.load("prod", local=False, overrides={"app_source_deploy_key": key})
