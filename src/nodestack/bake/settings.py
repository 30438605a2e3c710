"""What one environment's bake uses: the playbook variables and the values tagged on the AMI."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nodestack.paths import REPO_ROOT

ENVIRONMENTS = ("dev", "prod")
TEMPLATE = REPO_ROOT / "packer" / "nodeapp.pkr.hcl"
# Local mode: Node.js and the app come from the mounted local mirror and git remote.
LOCAL_OVERRIDES: dict[str, Any] = {
    "nodejs_mirror": "file:///srv/node-mirror",
    "nodejs_binaries": ["node"],  # the npm registry's build carries no npm
    "app_source_repo": "file:///srv/app-remote/app.git",
    "app_source_deploy_key": "",
    "app_source_known_hosts": [],
}
# The image must not have run the app: validation starts it.
BAKE_VARS: dict[str, Any] = {"auto_start_start_now": False}
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


class BakeConfigError(ValueError):
    """A bad input, found before anything is launched."""


@dataclass(frozen=True)
class EnvSettings:
    env: str
    playbook_vars: dict[str, Any] = field(repr=False)

    @property
    def nodejs_version(self) -> str:
        return str(self.playbook_vars["nodejs_version"])

    @property
    def app_revision(self) -> str:
        return str(self.playbook_vars["app_source_version"])

    def write_vars(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.playbook_vars, indent=2) + "\n")
        return path


def load(env: str, local: bool, overrides: dict[str, Any] | None = None) -> EnvSettings:
    """inventories/<env>/group_vars/app_servers.yml, plus local-mode and caller overrides; checked."""
    if env not in ENVIRONMENTS:
        raise BakeConfigError(f"--env {env} is unknown: choose from {', '.join(ENVIRONMENTS)}")
    source = REPO_ROOT / "inventories" / env / "group_vars" / "app_servers.yml"
    try:
        values: dict[str, Any] = yaml.safe_load(source.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BakeConfigError(f"{source}: cannot read the {env} app-server variables: {exc}") from exc
    values = {**values, **(LOCAL_OVERRIDES if local else {}), **BAKE_VARS, **(overrides or {})}
    version = str(values.get("nodejs_version", ""))
    if not _SEMVER.match(version):
        raise BakeConfigError(f"nodejs_version={version!r} in {source} is invalid: give an exact version such as 22.11.0")
    if not str(values.get("app_source_version", "")).strip():
        raise BakeConfigError(f"app_source_version is empty in {source}: set the tag or commit to bake")
    return EnvSettings(env, values)
