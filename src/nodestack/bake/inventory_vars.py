"""Variables as Ansible resolves them for an app server of an inventory: its group_vars
(all, then app_servers), extra variables on top, templates such as
`auto_start_port: "{{ stack_app_port }}"` resolved. Asked of Ansible itself, so the bake sees
what the roles will see. Vault is not opened: only the asked-for variables are templated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from nodestack.bake import ansible_json
from nodestack.paths import REPO_ROOT

_HOST = "nodestack-bake-vars"


class InventoryVarsError(ValueError):
    """Ansible could not resolve a variable (undefined reference, bad template)."""


def resolve(inventory: Path, names: list[str], extra_vars: dict[str, Any]) -> dict[str, Any]:
    """{name: value} for each name an app server of `inventory` has; undefined (or null) ones are left out."""
    ansible = Path(sys.executable).with_name("ansible")
    wanted = ", ".join(f"{json.dumps(n)}: ({n} if {n} is defined else none)" for n in names)
    with tempfile.TemporaryDirectory(prefix="nodestack-vars.") as tmp:
        hosts = Path(tmp) / "hosts.json"
        hosts.write_text(json.dumps({"app_servers": {"hosts": {_HOST: {"ansible_connection": "local"}}}}))
        extra = Path(tmp) / "extra.json"
        extra.write_text(json.dumps(extra_vars))
        result = subprocess.run(
            [str(ansible), _HOST, "-i", str(inventory), "-i", str(hosts), "-e", f"@{extra}",
             "-m", "ansible.builtin.debug", "-a", "msg={{ {" + wanted + "} | to_json }}"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, **ansible_json.CALLBACK_ENV, "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"},
        )
    found = ansible_json.outcomes(result.stdout, _HOST)
    if not found:
        raise InventoryVarsError(f"ansible could not read {inventory}: {(result.stderr or result.stdout).strip()}")
    outcome = found[0]
    if outcome.get("failed"):
        raise InventoryVarsError(f"{inventory}: {outcome.get('msg', outcome)}")
    values: dict[str, Any] = json.loads(outcome["msg"])
    return {k: v for k, v in values.items() if v is not None}
