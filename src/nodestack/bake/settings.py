"""What one environment's bake uses: the playbook variables and the values tagged on the AMI."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from nodestack import names
from nodestack.bake import app_source, inventory_vars
from nodestack.bake.build_host import NODE_MIRROR_MOUNT
from nodestack.paths import REPO_ROOT

ENVIRONMENTS = ("dev", "prod")
TEMPLATE = REPO_ROOT / "packer" / "nodeapp.pkr.hcl"
# subnet_id of a Packer variables file, as written there: a quoted string, perhaps a comment after it
_SUBNET_SETTING = re.compile(r"^\s*subnet_id\s*=\s*(.*?)\s*(?:(?:#|//).*)?$", re.MULTILINE)
# Local mode: Node.js comes from the mounted local mirror.
LOCAL_OVERRIDES: dict[str, Any] = {
    "nodejs_mirror": f"file://{NODE_MIRROR_MOUNT}",
    # AWS's CloudWatch and SSM agents are AWS downloads, not reachable here: configuration only
    "aws_agents_install": False,
    # the mirror's tarball is a repack, not nodejs.org's bytes: its own pins (scripts/node-mirror.sh),
    # read by Ansible when it runs (the mirror is made after preflight, with the build host)
    "nodejs_checksums": "{{ lookup('ansible.builtin.file', '%s') | from_json }}"
                        % (REPO_ROOT / ".state" / "node-mirror" / "checksums.json"),
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
# Ansible Vault's variables, by the inventory's convention: vault_<name>, used inside a template.
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_VAULT_VARIABLE = re.compile(r"\bvault_\w+")
VAULT_PASSWORD_ENV = "ANSIBLE_VAULT_PASSWORD_FILE"


class BakeConfigError(ValueError):
    """A bad input, found before anything is launched."""


def _true(value: Any) -> bool:
    """A boolean as Ansible reads one from YAML or a resolved template ("False" is false)."""
    return str(value).strip().lower() in ("true", "yes", "on", "1")


def _role_defaults(role: str) -> dict[str, Any]:
    defaults: dict[str, Any] = yaml.safe_load((REPO_ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    return defaults


@dataclass(frozen=True)
class AppCheck:
    """What the image checks and the boot validation probe: the app's unit, account and checkout,
    and its health check, from the settings the roles apply."""

    service: str
    user: str
    app_dir: str
    port: int
    health_path: str
    health_status: int
    config_unit: str = ""  # the app_config role's unit, when the app reads SSM at start
    # the CloudWatch agent: "" (off), "configured" (its configuration only) or "installed"; its log group
    agents: str = ""
    log_group: str = ""

    @classmethod
    def from_vars(cls, values: dict[str, Any], source: Path) -> AppCheck:
        """From resolved variables (role defaults beneath), as playbooks/app_server.yml wires them:
        the app runs as the users role's service account, checked out in its home's app/."""
        try:
            agents = ("installed" if _true(values["aws_agents_install"]) else "configured") \
                if _true(values["aws_agents_cloudwatch"]) else ""
            return cls(str(values["auto_start_service"]), str(values["users_service_name"]),
                       f"{values['users_service_home']}/app", int(values["auto_start_port"]),
                       str(values["auto_start_health_path"]), int(values["auto_start_health_status"]),
                       f"{values['auto_start_service']}-config.service" if values.get("app_config_path") else "",
                       agents, str(values.get("aws_agents_log_group") or ""))
        except (TypeError, ValueError) as exc:
            raise BakeConfigError(f"auto_start_port={values['auto_start_port']!r} and auto_start_health_status="
                                  f"{values['auto_start_health_status']!r} in {source} must be numbers") from exc


@dataclass(frozen=True)
class EnvSettings:
    env: str
    app_name: str  # the inventory's stack_app_name: names the AMI and its SSM parameter
    # group_vars as written (templates and Vault references kept: Ansible resolves them in the build)
    playbook_vars: dict[str, Any] = field(repr=False)
    nodejs_version: str
    app_revision: str
    app: AppCheck
    vault_file: Path | None = None
    # Said before the build: what it bakes when that is not simply app_source_repo (the sample app, a directory here)
    note: str = ""
    # Local mode: the team's repository on this machine, mounted read-only into the build host
    team_repo: Path | None = None
    # Another host's repository (a URL the build host clones): asked before the build (source_check)
    app_repo: str = ""
    # The full commit id app_source_version names, found in preflight (source_check.pin): tagged on
    # the AMI (AppCommit) and what the build checks out
    app_commit: str = ""
    # The build instance's subnet (Packer's variables file; "": the default VPC's), in whose VPC the
    # bake makes the build's security group
    subnet_id: str = ""

    def pinned(self, commit: str) -> EnvSettings:
        """These settings building commit: the AMI records it, and the build checks out the commit
        itself rather than the tag, so a tag moved after preflight cannot put another commit in an
        AMI that records this one (the image checks then find the tag elsewhere and fail the bake)."""
        return replace(self, app_commit=commit, playbook_vars={**self.playbook_vars, "app_source_version": commit})

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


def var_file(env: str) -> Path:
    """env's Packer variables: packer/vars/<env>.pkrvars.hcl."""
    return REPO_ROOT / "packer" / "vars" / f"{env}.pkrvars.hcl"


def build_subnet(env: str) -> str:
    """subnet_id in env's Packer variables, "" when it sets none."""
    path = var_file(env)
    try:
        found = _SUBNET_SETTING.findall(path.read_text())
    except OSError as exc:
        raise BakeConfigError(f"{path}: cannot read the {env} Packer variables: {exc}") from exc
    literal = re.fullmatch(r'"(subnet-[0-9a-f]+|)"', found[-1]) if found else None
    if found and literal is None:
        raise BakeConfigError(f"subnet_id = {found[-1]} in {path} is invalid: give a subnet id in quotes, "
                              'such as subnet_id = "subnet-0123456789abcdef0", or leave it out for the default VPC')
    return literal.group(1) if literal else ""


# What the bake itself needs to know, resolved by Ansible as the roles will see it.
# the stack role's check of stack_app_name, as the bake needs it before the stack exists
_RESOLVED = ["nodejs_version", "app_source_version", "app_source_repo", "auto_start_service", "auto_start_port",
             "auto_start_health_path", "auto_start_health_status", "users_service_name", "users_service_home",
             "app_config_path", "stack_app_name", "aws_agents_install", "aws_agents_cloudwatch", "aws_agents_log_group"]


def _vault_file(inventory: Path, values: dict[str, Any], local: bool) -> Path | None:
    """inventory/VAULT_FILE for Ansible to decrypt in the build: on AWS whenever it exists, locally when
    the variables refer to Ansible Vault. When they do, it and ANSIBLE_VAULT_PASSWORD_FILE must exist."""
    vault = inventory / VAULT_FILE
    uses = {name: sorted({v for t in _TEMPLATE.findall(json.dumps(value)) for v in _VAULT_VARIABLE.findall(t)}
                         - values.keys()) for name, value in values.items()}
    users = [f"{name}={values[name]!r}" for name, found in sorted(uses.items()) if found]
    if not users:
        return vault if vault.is_file() and not local else None
    if not vault.is_file():
        secrets = ", ".join(sorted({v for found in uses.values() for v in found}))
        hint = ("; a repository that needs no deploy key (https://, a directory here) takes "
                "app_source_deploy_key: \"\"" if uses.get("app_source_deploy_key") else "")
        raise BakeConfigError(f"{', '.join(users)} {'refers' if len(users) == 1 else 'refer'} to Ansible Vault, "
                              f"but {vault} does not exist: create it "
                              f"(ansible-vault create {vault}) with {secrets}{hint}")
    password = os.environ.get(VAULT_PASSWORD_ENV, "")
    if not password or not Path(password).expanduser().is_file():
        problem = f"{password} does not exist" if password else "it is not set"
        raise BakeConfigError(f"{', '.join(users)} {'needs' if len(users) == 1 else 'need'} {vault}, which Ansible "
                              f"decrypts with the password in the file {VAULT_PASSWORD_ENV} names, but {problem}: "
                              f"export {VAULT_PASSWORD_ENV}=/path/to/that/file")
    return vault


def load(env: str, local: bool, overrides: dict[str, Any] | None = None) -> EnvSettings:
    """inventories/<env>/group_vars (all.yml, then app_servers.yml), plus local-mode and caller
    overrides; checked."""
    if env not in ENVIRONMENTS:
        raise BakeConfigError(f"--env {env} is unknown: choose from {', '.join(ENVIRONMENTS)}")
    inventory = REPO_ROOT / "inventories" / env
    source = inventory / "group_vars" / "app_servers.yml"
    values: dict[str, Any] = {}
    for path in (inventory / "group_vars" / "all.yml", source):
        if path == source or path.is_file():
            try:
                values.update(yaml.safe_load(path.read_text()) or {})
            except (OSError, yaml.YAMLError) as exc:
                raise BakeConfigError(f"{path}: cannot read the {env} variables: {exc}") from exc
    extra = {**(LOCAL_OVERRIDES if local else {}), **BAKE_VARS, **(overrides or {})}
    values = {**values, **extra}
    try:
        found = inventory_vars.resolve(inventory, _RESOLVED, extra)
    except inventory_vars.InventoryVarsError as exc:
        raise BakeConfigError(f"cannot resolve the {env} app-server variables: {exc}") from exc
    unresolved = [f"{name}={values[name]!r}" for name in _RESOLVED
                  if values.get(name) is not None and name not in found]
    if unresolved:
        raise BakeConfigError(f"{', '.join(unresolved)} in {inventory / 'group_vars'} refer to a variable that is "
                              "not defined: define it in group_vars (all.yml or app_servers.yml)")
    resolved = {**_role_defaults("nodejs"), **_role_defaults("users"), **_role_defaults("auto_start"),
                **_role_defaults("app_config"), **_role_defaults("aws_agents"), **found}
    version = str(resolved.get("nodejs_version", ""))
    if not _SEMVER.match(version) and version != "auto":
        raise BakeConfigError(f"nodejs_version={version!r} in {source} is invalid: give an exact version such as "
                              "22.11.0, or auto to take it from the app's .nvmrc, .node-version or engines.node")
    app_name = str(found.get("stack_app_name") or "")
    if not names.APP_NAME.fullmatch(app_name):
        raise BakeConfigError(f"stack_app_name={app_name!r} in {inventory / 'group_vars'} is invalid: give the "
                              "app's name, 2-31 lowercase letters, digits or '-' starting with a letter (it names "
                              "the AMI and the SSM parameter the stack reads it from)")
    revision = str(resolved.get("app_source_version", "")).strip()
    if not revision:
        raise BakeConfigError(f"app_source_version is empty in {source}: set the tag or commit to bake")
    plaintext = sorted(k for k, v in values.items() if _PLAINTEXT_SECRET.search(json.dumps(v)))
    if plaintext:
        raise BakeConfigError(f"{', '.join(plaintext)} holds a private key in plain text: put it in Ansible Vault "
                              f"({inventory / VAULT_FILE}, ansible-vault encrypt) and refer to it, as "
                              "app_source_deploy_key: \"{{ vault_app_source_deploy_key }}\"")
    try:
        checkout = app_source.resolve(str(found.get("app_source_repo") or "").strip(), local, revision, source)
    except app_source.AppSourceError as exc:
        raise BakeConfigError(str(exc)) from exc
    values.update(checkout.values)
    return EnvSettings(env, app_name, values, version, revision, AppCheck.from_vars(resolved, source),
                       _vault_file(inventory, values, local), checkout.note, checkout.team_repo,
                       "" if checkout.values else str(found.get("app_source_repo") or "").strip(),
                       subnet_id=build_subnet(env))
