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
    ("users", '{"users_accounts": [{"ssh_keys": [], "sudo": true}]}', "missing required arguments: name", 0),
    ("users", '{"users_accounts": [{"name": "Alice Smith"}]}', "users_accounts names", 1),
    ("app_source", "app_source_repo=ssh://git@git.example.invalid/app.git", "app_source_version", 0),
    ("app_source", "app_source_repo=ssh://git@git.example.invalid/app.git app_source_version=v1.0.0",
     "app_source_known_hosts", 1),
    ("auto_start", "auto_start_mode=lazy", "auto_start_mode", 0),
    ("auto_start", "auto_start_mode=pull", "pull mode needs auto_start_revision", 1),
    ("stack", '{"stack_asg_max_size": "many", "aws_region": "us-east-1", "stack_env": "dev"}', "stack_asg_max_size", 0),
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
    # Only validation ran: nothing was touched.
    assert f"ok={checks_passed} " in result.stdout and "changed=0" in result.stdout
