"""Ansible asked from the bake with its json stdout callback: the environment that selects the
callback, and each task's result from the report it prints (inventory_vars, source_check)."""

from __future__ import annotations

import json
from typing import Any

# With these in the environment, ansible and ansible-playbook print one JSON report on stdout.
CALLBACK_ENV = {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
                "ANSIBLE_FORCE_COLOR": "0"}


def outcomes(stdout: str, host: str | None = None) -> list[dict[str, Any]]:
    """Each task's result in the report, in order: host's, or every host's; [] when stdout holds no
    such report (Ansible stopped before it, or printed something else)."""
    try:
        return [outcome for play in json.loads(stdout)["plays"] for task in play["tasks"]
                for name, outcome in task["hosts"].items() if host is None or name == host]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
