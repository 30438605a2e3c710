"""What one environment's bake uses: the playbook variables and the values tagged on the AMI."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
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
    # the mirror's tarball is a repack, not nodejs.org's bytes: its own pins (scripts/node-mirror.sh),
    # read by Ansible when it runs (the mirror is made after preflight, with the build host)
    "nodejs_checksums": "{{ lookup('ansible.builtin.file', '%s') | from_json }}"
                        % (REPO_ROOT / ".state" / "node-mirror" / "checksums.json"),
    "app_source_repo": "file:///srv/app-remote/app.git",
    "app_source_deploy_key": "",
    "app_source_known_hosts": [],
}
# The image must not have run the app: validation starts it.
BAKE_VARS: dict[str, Any] = {"auto_start_start_now": False}
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
# The playbook's variables for one build: a file in the build's directory, only while Packer runs.
PLAYBOOK_VARS = "playbook-vars.json"
# Secrets (the deploy key) stay in Ansible Vault: this file, vault-encrypted, reaches Ansible as
# `--extra-vars @file` and only Ansible decrypts it (ANSIBLE_VAULT_PASSWORD_FILE).
VAULT_FILE = "vault.yml"
_PLAINTEXT_SECRET = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


class BakeConfigError(ValueError):
    """A bad input, found before anything is launched."""


@dataclass(frozen=True)
class EnvSettings:
    env: str
    playbook_vars: dict[str, Any] = field(repr=False)
    vault_file: Path | None = None

    @property
    def nodejs_version(self) -> str:
        return str(self.playbook_vars["nodejs_version"])

    @property
    def app_revision(self) -> str:
        return str(self.playbook_vars["app_source_version"])

    @contextmanager
    def vars_file(self, workdir: Path) -> Iterator[Path]:
        """The playbook's variables as workdir/PLAYBOOK_VARS, mode 0600 from its creation, deleted
        on the way out (also on failure). It holds references such as
        `{{ vault_app_source_deploy_key }}`, never their values: Ansible resolves those."""
        path = workdir / PLAYBOOK_VARS
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(self.playbook_vars, indent=2) + "\n")
            yield path
        finally:
            path.unlink(missing_ok=True)


def load(env: str, local: bool, overrides: dict[str, Any] | None = None) -> EnvSettings:
    """inventories/<env>/group_vars/app_servers.yml, plus local-mode and caller overrides; checked."""
    if env not in ENVIRONMENTS:
        raise BakeConfigError(f"--env {env} is unknown: choose from {', '.join(ENVIRONMENTS)}")
    inventory = REPO_ROOT / "inventories" / env
    source = inventory / "group_vars" / "app_servers.yml"
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
    plaintext = sorted(k for k, v in values.items() if _PLAINTEXT_SECRET.search(json.dumps(v)))
    if plaintext:
        raise BakeConfigError(f"{', '.join(plaintext)} holds a private key in plain text: put it in Ansible Vault "
                              f"({inventory / VAULT_FILE}, ansible-vault encrypt) and refer to it, as "
                              "app_source_deploy_key: \"{{ vault_app_source_deploy_key }}\"")
    vault = inventory / VAULT_FILE
    return EnvSettings(env, values, vault if vault.is_file() and not local else None)
