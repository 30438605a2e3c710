"""What site.yml compares to skip a converged layer (roles/stack/tasks/converged.yml):
stack_inputs_digest, a digest of the run's inputs; stack_code_digest, a digest of the code that
shapes the stack (the stack roles, their modules and templates, the filters, the pinned
packages and collections): a changed role or upgrade applies every layer again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def stack_code_digest(roles_dir: str) -> str:
    roles = Path(roles_dir)
    digest = hashlib.sha256()
    files = [path for role in sorted(roles.glob("stack*")) for path in sorted(role.rglob("*"))]
    files += sorted((roles.parent / "plugins" / "filter").glob("*.py"))
    files.append(roles.parent / "requirements.lock")  # the collections' versions: a module's change changes a run
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(roles.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _omit(value: Any) -> str:
    """Ansible's omit placeholder (a setting left out), the one value JSON cannot hold here."""
    if type(value).__name__ == "_OmitType":
        return "(omitted)"
    raise TypeError(f"a stack setting holds {type(value).__name__}, which the inputs' digest cannot count")


def stack_inputs_digest(value: Any) -> str:
    """A digest of the run's inputs."""
    text = json.dumps(value, sort_keys=True, default=_omit)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"stack_code_digest": stack_code_digest, "stack_inputs_digest": stack_inputs_digest}
