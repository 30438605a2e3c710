"""A role given a bad input fails in argument validation, naming the variable, before any task."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO

PLAY = """\
- name: Apply {role} with one bad input
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: {role}
"""


@pytest.mark.parametrize(("role", "override", "named", "checks_passed"), [
    ("base", "base_sshd_permit_root_login=maybe", "base_sshd_permit_root_login", 0),
    ("base", "base_sshd_port=twenty-two", "base_sshd_port", 0),
    ("nodejs", "nodejs_install_method=curl", "nodejs_install_method", 0),
    # semver is checked by the role's first task, right after the argument spec
    ("nodejs", "nodejs_version=22", "nodejs_version=22 is invalid", 1),
    # plain HTTP, and a version without a pinned checksum: refused before any download
    ("nodejs", "nodejs_mirror=http://127.0.0.1:9/dist", "nodejs_mirror=http://127.0.0.1:9/dist must be https://", 7),
    ("nodejs", "nodejs_version=22.12.0", 'nodejs_checksums["22.12.0"]', 7),
    ("nodejs", "nodejs_version=auto", "nodejs_version=auto needs nodejs_version_from", 2),
    ("nodejs", "nodejs_version=auto nodejs_install_method=package nodejs_version_from=/srv/app",
     "nodejs_install_method=tarball", 2),
    ("nodejs", "nodejs_version=auto nodejs_version_from=/nonexistent/app",
     "/nonexistent/app has no .nvmrc, .node-version or package.json", 7),
    ("users", '{"users_accounts": [{"ssh_keys": [], "sudo": true}]}', "missing required arguments: name", 0),
    ("users", '{"users_accounts": [{"name": "Alice Smith"}]}', "users_accounts names", 1),
    ("app_source", "app_source_repo=ssh://git@git.example.invalid/app.git", "app_source_version", 0),
    ("app_source", "app_source_repo=ssh://git@git.example.invalid/app.git app_source_version=v1.0.0",
     "app_source_known_hosts", 2),
    ("auto_start", "auto_start_mode=lazy", "auto_start_mode", 0),
    ("auto_start", "auto_start_mode=pull", "pull mode needs auto_start_revision", 1),
    # rendered into the script root runs and the file it reads
    ("auto_start", """auto_start_health_path='/health"$(id)"'""", "auto_start_health_path is invalid", 2),
    ("auto_start", '{"auto_start_environment": {"BAD;NAME": "x", "PORT": "80"}}',
     "auto_start_environment has invalid names ['BAD;NAME', 'PORT']", 3),
    ("auto_start", "auto_start_health_status=600", "auto_start_health_status=600 must be", 1),
    ("app_build", "app_build_package_manager=bun", "app_build_package_manager", 0),
    ("app_build", "app_build_owner=root", "app_build_owner=root must not be root", 2),
    # a token in the URL would reach every log; the token has its own (no_log) setting
    ("app_build", "app_build_registry=https://user:secret@npm.example.com/",
     "must be an https:// URL without credentials", 1),
    ("app_build", "app_build_registry_token=abc", "app_build_registry_token needs app_build_registry", 2),
    ("app_config", "app_config_wait_seconds=soon", "app_config_wait_seconds", 0),
    # rendered into the unit root runs
    ("app_config", "app_config_path='/nodeapp/prod/config/ --output /etc/shadow'", "must be an SSM path", 1),
    ("app_config", "app_config_path=/nodeapp/prod/config", "must be an SSM path", 1),
    ("app_config", "app_config_path=/nodeapp/prod/config/ app_config_region=eu-west-1;id", "app_config_region", 1),
    ("stack", '{"stack_lock_minutes": "many", "aws_region": "us-east-1", "stack_env": "dev", "stack_app_name": "shop"}',
     "stack_lock_minutes", 0),
    # a layer's setting (roles/stack_compute's spec): the stack role's checks validate every layer's spec
    # first (after its own spec, the checks' include and the unknown-names check)
    ("stack", '{"stack_asg_max_size": "many", "aws_region": "us-east-1", "stack_env": "dev", "stack_app_name": "shop"}',
     "stack_asg_max_size", 3),
])
def test_bad_role_input_fails_before_any_change(
    tmp_path: Path, role: str, override: str, named: str, checks_passed: int
) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(role=role))
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", override],
        cwd=REPO, env={"PATH": "/usr/bin:/bin", "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_FORCE_COLOR": "0"},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    assert "Validating arguments against arg spec" in result.stdout
    assert named in result.stdout
    assert "secret@" not in result.stdout  # a refused URL's credentials are never echoed
    # Only validation ran: nothing was touched.
    assert f"ok={checks_passed} " in result.stdout and "changed=0" in result.stdout


def test_repository_url_with_credentials_is_refused_without_printing_them(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(role="app_source"))
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), "-v",
         "-e", "app_source_repo=https://ci:s3cr3t-t0ken@git.example.invalid/app.git app_source_version=v1.0.0"],
        cwd=REPO, env={"PATH": "/usr/bin:/bin", "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_FORCE_COLOR": "0"},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    assert "app_source_repo holds credentials" in result.stdout
    assert "s3cr3t-t0ken" not in result.stdout + result.stderr
    assert "ok=1 " in result.stdout and "changed=0" in result.stdout
