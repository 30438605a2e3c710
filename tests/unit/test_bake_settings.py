"""The bake takes the app's settings as Ansible resolves them: the stack's port and health
check flow to the image checks through the inventory's references. It bakes the configured
app repository (locally: the sample app only when none is configured)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from nodestack import names
from nodestack.bake import app_source, job, settings
from nodestack.bake.build_host import TEAM_REPO_MOUNT
from nodestack.bake.target import Target
from nodestack.paths import REPO_ROOT


def test_port_and_health_check_come_from_the_stack_settings() -> None:
    app = settings.load("dev", local=True, overrides={
        "stack_app_port": 8080, "stack_health_check_path": "/", "stack_health_check_status": 204}).app
    assert (app.port, app.health_path, app.health_status) == (8080, "/", 204)
    assert (app.service, app.user, app.app_dir) == ("nodeapp", "nodeapp", "/srv/nodeapp/app")


def test_role_defaults_fill_what_the_inventory_leaves_out() -> None:
    app = settings.load("prod", local=True,
                        overrides={"users_service_home": "/srv/shop", "auto_start_service": "shop"}).app
    assert (app.service, app.app_dir) == ("shop", "/srv/shop/app")


def test_a_templated_node_version_is_resolved() -> None:
    loaded = settings.load("dev", local=True,
                           overrides={"node_release": "22.11.0", "nodejs_version": "{{ node_release }}"})
    assert loaded.nodejs_version == "22.11.0"


def test_node_version_auto_is_left_to_the_build_and_a_partial_version_refused() -> None:
    assert settings.load("dev", local=True, overrides={"nodejs_version": "auto"}).nodejs_version == "auto"
    with pytest.raises(settings.BakeConfigError, match="nodejs_version='22' .* 22.11.0, or auto to take it from"):
        settings.load("dev", local=True, overrides={"nodejs_version": "22"})


def test_an_undefined_reference_is_a_clear_error() -> None:
    with pytest.raises(settings.BakeConfigError, match="nodejs_version='{{ no_such_setting }}' .* not defined"):
        settings.load("dev", local=True, overrides={"nodejs_version": "{{ no_such_setting }}"})


def test_a_port_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(settings.BakeConfigError, match="auto_start_port='http' .* must be numbers"):
        settings.load("dev", local=True, overrides={"stack_app_port": "http"})


def test_the_app_name_comes_from_the_inventory_and_names_the_ami_and_its_parameter() -> None:
    loaded = settings.load("dev", local=True, overrides={"stack_app_name": "shop"})
    assert loaded.app_name == "shop"
    variables = job.packer_variables(Target(local=True, region="us-east-1", aws_env={
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}),
        loaded, Path("/nonexistent"), "20261204000000")
    assert (variables["app_name"], variables["project"]) == ("shop", names.project())
    # the parameter site.yml reads (roles/stack/vars/main.yml's ami_parameter), not nodeapp's
    assert names.ami_parameter(loaded.app_name, "dev") == "/shop/dev/ami/latest"


def test_an_app_name_the_stack_would_refuse_is_refused_before_the_build() -> None:
    with pytest.raises(settings.BakeConfigError, match="stack_app_name='Shop App' in .* is invalid: give the app"):
        settings.load("dev", local=True, overrides={"stack_app_name": "Shop App"})


def test_the_project_tag_is_the_naming_maps() -> None:
    naming_map = yaml.safe_load((REPO_ROOT / "roles/stack/vars/main.yml").read_text())
    assert names.project() == naming_map["stack__project"] != ""


# The app repository to bake (issue 11): the configured one; locally the sample app only when none is.
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@localhost", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
VAULT_PASSWORD_ENV = "ANSIBLE_VAULT_PASSWORD_FILE"
GITHUB = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, timeout=60)


@pytest.fixture
def repo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's inventories (the roles and Packer's variables linked) as settings' REPO_ROOT."""
    root = tmp_path / "nodestack"
    shutil.copytree(REPO_ROOT / "inventories", root / "inventories")
    (root / "roles").symlink_to(REPO_ROOT / "roles")
    (root / "packer").symlink_to(REPO_ROOT / "packer")
    monkeypatch.setattr(settings, "REPO_ROOT", root)
    monkeypatch.setattr(app_source, "REPO_ROOT", root)
    monkeypatch.delenv(VAULT_PASSWORD_ENV, raising=False)
    return root


def configure(root: Path, env: str = "dev", **app_servers: object) -> None:
    """Set variables in the copy's inventories/<env>/group_vars/app_servers.yml."""
    path = root / "inventories" / env / "group_vars" / "app_servers.yml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **app_servers}))


@pytest.fixture
def team_app(tmp_path: Path) -> Path:
    """A team's app as a working tree with .git, its commit tagged v1.0.0 (the inventories' revision)."""
    work = tmp_path / "team-app"
    work.mkdir()
    (work / "package.json").write_text('{"name": "team-app", "scripts": {"start": "node server.js"}}\n')
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "team app", cwd=work)
    git("tag", "v1.0.0", cwd=work)
    return work


def assert_mounted(loaded: settings.EnvSettings, directory: Path) -> None:
    assert loaded.team_repo == directory.resolve()
    assert loaded.playbook_vars["app_source_repo"] == f"file://{TEAM_REPO_MOUNT}"
    assert (loaded.playbook_vars["app_source_deploy_key"], loaded.playbook_vars["app_source_known_hosts"]) == ("", [])
    assert str(directory) in loaded.note and loaded.vault_file is None


@pytest.mark.parametrize("env", settings.ENVIRONMENTS)
def test_the_shipped_inventories_bake_the_sample_app_and_say_so(env: str) -> None:
    loaded = settings.load(env, local=True)
    assert loaded.playbook_vars["app_source_repo"] == "file:///srv/app-remote/app.git"
    assert (loaded.playbook_vars["app_source_deploy_key"], loaded.playbook_vars["app_source_known_hosts"]) == ("", [])
    assert loaded.note == (f"app_source_repo is not set in inventories/{env}/group_vars/app_servers.yml: "
                           "baking the bundled sample app (app/)")
    assert loaded.team_repo is None and loaded.vault_file is None


def test_an_absent_repository_is_not_configured_either(repo_root: Path) -> None:
    path = repo_root / "inventories" / "dev" / "group_vars" / "app_servers.yml"
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if not line.startswith("app_source_repo:")))
    loaded = settings.load("dev", local=True)
    assert loaded.playbook_vars["app_source_repo"] == "file:///srv/app-remote/app.git" and "sample app" in loaded.note


def test_a_working_tree_is_mounted_and_cloned_from_the_mount(repo_root: Path, team_app: Path) -> None:
    configure(repo_root, app_source_repo=str(team_app))
    assert_mounted(settings.load("dev", local=True), team_app)


def test_a_bare_repository_by_file_url(repo_root: Path, team_app: Path, tmp_path: Path) -> None:
    git("clone", "-q", "--bare", str(team_app), str(tmp_path / "team.git"), cwd=tmp_path)
    configure(repo_root, "prod", app_source_repo=f"file://{tmp_path / 'team.git'}")
    assert_mounted(settings.load("prod", local=True), tmp_path / "team.git")


def test_a_path_relative_to_the_repository_or_home(repo_root: Path, team_app: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.move(team_app, repo_root / "team-app")
    configure(repo_root, app_source_repo="team-app")
    assert_mounted(settings.load("dev", local=True), repo_root / "team-app")
    monkeypatch.setenv("HOME", str(repo_root))
    assert_mounted(settings.load("dev", local=True, overrides={"app_source_repo": "~/team-app"}),
                   repo_root / "team-app")


@pytest.mark.parametrize(("make", "problem"), [
    (lambda tmp: tmp / "nowhere", "does not exist"),
    (lambda tmp: tmp, "is not a git repository"),
])
def test_a_directory_that_is_no_repository_launches_nothing(repo_root: Path, tmp_path: Path,
                                                            make: Callable[[Path], Path], problem: str) -> None:
    directory = make(tmp_path)
    configure(repo_root, app_source_repo=f"file://{directory}")
    with pytest.raises(settings.BakeConfigError,
                       match=f"app_source_repo=file://{directory} in .*: {directory} {problem}"):
        settings.load("dev", local=True)


def test_a_revision_the_repository_lacks_is_refused(repo_root: Path, team_app: Path) -> None:
    configure(repo_root, app_source_repo=str(team_app), app_source_version="v2.0.0")
    with pytest.raises(settings.BakeConfigError, match=f"app_source_version=v2.0.0 is not a commit of {team_app}"):
        settings.load("dev", local=True)


def test_a_repository_others_cannot_read_is_refused(repo_root: Path, team_app: Path) -> None:
    head = team_app / ".git" / "HEAD"
    head.chmod(0o600)
    configure(repo_root, app_source_repo=str(team_app))
    with pytest.raises(settings.BakeConfigError, match=f"{head} is not readable by other accounts"):
        settings.load("dev", local=True)


def test_a_public_https_repository_is_kept(repo_root: Path) -> None:
    configure(repo_root, app_source_repo="https://github.com/acme/app.git", app_source_deploy_key="",
              app_source_known_hosts=[])
    loaded = settings.load("dev", local=True)
    assert loaded.playbook_vars["app_source_repo"] == "https://github.com/acme/app.git"
    assert (loaded.note, loaded.team_repo, loaded.vault_file) == ("", None, None)


@pytest.mark.parametrize("local", [True, False])
def test_an_ssh_repository_is_kept_with_its_key_from_vault(repo_root: Path, tmp_path: Path, local: bool,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    configure(repo_root, app_source_repo="git@github.com:acme/app.git")
    vault = repo_root / "inventories" / "dev" / settings.VAULT_FILE
    vault.write_text("$ANSIBLE_VAULT;1.1;AES256\n")
    (tmp_path / "vault-pass").write_text("secret\n")
    monkeypatch.setenv(VAULT_PASSWORD_ENV, str(tmp_path / "vault-pass"))
    loaded = settings.load("dev", local=local)
    assert loaded.playbook_vars["app_source_repo"] == "git@github.com:acme/app.git"
    assert loaded.playbook_vars["app_source_deploy_key"] == "{{ vault_app_source_deploy_key }}"
    assert loaded.playbook_vars["app_source_known_hosts"] == [GITHUB]
    assert (loaded.vault_file, loaded.team_repo, loaded.note) == (vault, None, "")


def test_a_vault_reference_without_a_vault_file_is_refused(repo_root: Path) -> None:
    configure(repo_root, app_source_repo="ssh://git@git.example.com/acme/app.git")
    with pytest.raises(settings.BakeConfigError, match=r"app_source_deploy_key='\{\{ vault_app_source_deploy_key \}\}' "
                       r"refers to Ansible Vault, but .*/inventories/dev/vault.yml does not exist"):
        settings.load("dev", local=True)


def test_a_vault_file_without_its_password_is_refused(repo_root: Path) -> None:
    configure(repo_root, app_source_repo="git@github.com:acme/app.git")
    (repo_root / "inventories" / "dev" / settings.VAULT_FILE).write_text("$ANSIBLE_VAULT;1.1;AES256\n")
    with pytest.raises(settings.BakeConfigError, match=f"{VAULT_PASSWORD_ENV} names, but it is not set"):
        settings.load("dev", local=True)


def test_aws_refuses_an_unset_repository(repo_root: Path) -> None:
    with pytest.raises(settings.BakeConfigError, match="app_source_repo is not set in .*/inventories/prod/group_vars/"
                                                       "app_servers.yml: set it to your app's git repository"):
        settings.load("prod", local=False)


def test_aws_refuses_a_directory_of_this_machine(repo_root: Path, team_app: Path) -> None:
    configure(repo_root, app_source_repo=str(team_app))
    with pytest.raises(settings.BakeConfigError, match="which the AWS build instance cannot reach"):
        settings.load("dev", local=False)
