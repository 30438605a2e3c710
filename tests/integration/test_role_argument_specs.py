"""A role given a bad input fails in argument validation, naming the variable, before any task."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PLAY = """\
- name: Apply {role} with one bad input
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: {role}
"""


@pytest.mark.parametrize(("role", "override", "named"), [
    ("base", "base_sshd_permit_root_login=maybe", "base_sshd_permit_root_login"),
    ("base", "base_sshd_port=twenty-two", "base_sshd_port"),
])
def test_bad_role_input_fails_before_any_task(tmp_path: Path, role: str, override: str, named: str) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(role=role))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", override],
        cwd=REPO, env={"PATH": "/usr/bin:/bin", "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_FORCE_COLOR": "0"},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    assert "Validating arguments against arg spec" in result.stdout
    assert named in result.stdout
    # The validation task is the only one that ran: nothing was touched.
    assert "ok=0" in result.stdout and "changed=0" in result.stdout
