"""The json callback's report as inventory_vars and source_check read it: each task's result, per
host, from a real Ansible run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nodestack.bake import ansible_json

PLAY = """\
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.debug: {msg: "first {{ inventory_hostname }}"}
    - ansible.builtin.set_fact: {answer: 42}
    - ansible.builtin.fail: {msg: "stopped {{ inventory_hostname }}"}
      when: inventory_hostname == 'two'
"""


def test_each_tasks_result_per_host_in_order(tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text(PLAY)
    result = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), str(tmp_path / "play.yml"),
                             "-i", "one,two,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, **ansible_json.CALLBACK_ENV})
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    one = ansible_json.outcomes(result.stdout, "one")
    assert [o.get("msg") for o in one] == ["first one", None, None]
    assert one[1]["ansible_facts"] == {"answer": 42} and one[2].get("skipped")
    two = ansible_json.outcomes(result.stdout, "two")
    assert two[-1]["failed"] and two[-1]["msg"] == "stopped two"
    assert len(ansible_json.outcomes(result.stdout)) == 6  # every host's


def test_no_report_is_no_result() -> None:
    for stdout in ("", "ERROR! the playbook could not be found", '{"plays": null}', "[]"):
        assert ansible_json.outcomes(stdout) == []
