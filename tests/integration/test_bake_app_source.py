"""The bake asks the app's repository from this machine before it launches a build host (issue 15):
with the deploy key out of the Vault file and the pinned host keys, against a git remote served
over SSH by a container on loopback, as GitHub would serve it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from nodestack.bake import settings, source_check
from nodestack.bake.build_host import podman
from nodestack.local_cloud import base_image, server
from nodestack.paths import free_port
from tests.conftest import cli

REMOTE = "nodestack-test-ssh-git-remote"
UNUSED_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBiN2Wn5ud5cSXmQJ0pUjTMQbyGs7Rr6zTjsxR+Ya2dG"
# Served as GitHub serves a repository: git-shell only, the deploy key authorised, a fixed host key.
SERVE = (
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git"
    " && useradd -r -d /srv/git -s /usr/bin/git-shell git"
    " && install -d -o git -g git -m 0700 /srv/git/.ssh"
    " && install -o git -g git -m 0600 /srv/fixture/deploy_key.pub /srv/git/.ssh/authorized_keys"
    " && cp -r /srv/fixture/app.git /srv/git/app.git && chown -R git:git /srv/git/app.git"
    " && install -m 0600 /srv/fixture/host_key /etc/ssh/nodestack_test_host_key"
    " && echo 'HostKey /etc/ssh/nodestack_test_host_key' > /etc/ssh/sshd_config.d/05-test-host-key.conf"
    " && systemctl restart ssh"
)


@dataclass(frozen=True)
class Remote:
    url: str
    port: int
    known_hosts: list[str]
    key: str  # the deploy key the remote authorises (the fixture's)
    revisions: str  # the fixture's tag -> commit map, as text


Vaulted = Callable[[str, str, str, list[str]], settings.EnvSettings]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@pytest.fixture(scope="module")
def remote(test_fixtures: Path) -> Iterator[Remote]:
    fixture = test_fixtures / "git-fixture"
    port = free_port()
    podman("rm", "-f", "-t", "0", REMOTE, check=False)
    podman("run", "-d", "--name", REMOTE, "--systemd=always", "-p", f"127.0.0.1:{port}:22",
           "-v", f"{fixture}:/srv/fixture:ro", base_image.IMAGE, "/sbin/init")
    try:
        podman("exec", REMOTE, "sh", "-c", SERVE, timeout=300)
        deadline = time.monotonic() + 60
        while not _answers(port):
            assert time.monotonic() < deadline, "the git remote's sshd did not answer"
            time.sleep(0.5)
        host_key = " ".join((fixture / "host_key.pub").read_text().split()[:2])
        yield Remote(f"ssh://git@127.0.0.1:{port}/srv/git/app.git", port, [f"[127.0.0.1]:{port} {host_key}"],
                     (fixture / "deploy_key").read_text(), (fixture / "revisions.json").read_text())
    finally:
        podman("rm", "-f", "-t", "0", REMOTE, check=False)


@pytest.fixture
def vaulted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Vaulted:
    """settings of dev as the bake loads them, for `repo` at `version` with `key` (text) from an
    encrypted Vault file, as a team keeps its deploy key."""
    password = tmp_path / "vault-password"
    password.write_text("test-only-password\n")
    monkeypatch.setenv(settings.VAULT_PASSWORD_ENV, str(password))

    def make(repo: str, version: str, key: str, known_hosts: list[str]) -> settings.EnvSettings:
        vault = tmp_path / "vault.yml"
        vault.unlink(missing_ok=True)
        plain = tmp_path / "plain.yml"
        plain.write_text("vault_app_source_deploy_key: |\n" + "".join(f"  {line}\n" for line in key.splitlines()))
        subprocess.run([str(Path(sys.executable).with_name("ansible-vault")), "encrypt", "--output", str(vault),
                        str(plain)], check=True, capture_output=True, timeout=60)
        plain.unlink()
        loaded = settings.load("dev", local=True, overrides={
            "app_source_repo": repo, "app_source_version": version, "app_source_known_hosts": known_hosts,
            "app_source_deploy_key": ""})
        assert loaded.app_repo == repo
        return replace(loaded, vault_file=vault, playbook_vars={
            **loaded.playbook_vars, "app_source_deploy_key": "{{ vault_app_source_deploy_key }}"})

    return make


def test_the_repository_answers_with_the_vaulted_deploy_key(remote: Remote, vaulted: Vaulted) -> None:
    answer = source_check.check(vaulted(remote.url, "v1.1.0", remote.key, remote.known_hosts))
    assert answer.said.startswith(f"{remote.url} answers with the deploy key: v1.1.0 is refs/tags/v1.1.0 at ")
    assert answer.commit == json.loads(remote.revisions)["v1.1.0"] == answer.said.split(" at ")[-1]  # the tag's
    assert "PRIVATE KEY" not in answer.said


def test_the_bake_builds_the_commit_the_tag_names_now(remote: Remote, vaulted: Vaulted) -> None:
    """Preflight pins the build to the commit: the AMI's AppCommit, and what the build checks out
    (a tag moved later cannot reach the image)."""
    pinned, said = source_check.pin(vaulted(remote.url, "v1.0.0", remote.key, remote.known_hosts))
    commit = json.loads(remote.revisions)["v1.0.0"]
    assert said.endswith(f"v1.0.0 is refs/tags/v1.0.0 at {commit}")
    assert pinned.app_commit == pinned.playbook_vars["app_source_version"] == commit
    assert pinned.app_revision == "v1.0.0"  # AppRevision stays the name given
    # a full commit id is its own commit (the clone checks the repository has it)
    by_id, _ = source_check.pin(vaulted(remote.url, commit, remote.key, remote.known_hosts))
    assert by_id.app_commit == commit


def test_an_abbreviated_commit_id_is_refused_naming_the_fix(remote: Remote, vaulted: Vaulted) -> None:
    short = json.loads(remote.revisions)["v1.0.0"][:7]
    with pytest.raises(source_check.SourceUnreachable) as refused:
        source_check.pin(vaulted(remote.url, short, remote.key, remote.known_hosts))
    assert str(refused.value) == (
        f"app_source_version={short} is not a tag of {remote.url} and reads as an abbreviated commit id, which only a "
        "clone could resolve, so the AMI could not record the commit it is built from: give the full commit id "
        f"(git rev-parse {short} in a clone of the repository) or a tag")


def test_the_sample_app_and_a_directory_here_are_pinned_by_git(test_fixtures: Path, tmp_path: Path) -> None:
    sample = settings.load("dev", local=True, overrides={"app_source_version": "v1.1.0"})
    assert not sample.app_repo and sample.team_repo is None
    pinned, said = source_check.pin(sample)
    commit = json.loads((test_fixtures / "git-fixture" / "revisions.json").read_text())["v1.1.0"]
    assert pinned.app_commit == pinned.playbook_vars["app_source_version"] == commit
    assert said == f"{test_fixtures / 'git-fixture' / 'app.git'}: v1.1.0 is commit {commit}"
    team = settings.load("dev", local=True, overrides={
        "app_source_repo": str(test_fixtures / "git-fixture" / "app.git"), "app_source_version": commit[:9]})
    assert source_check.pin(team)[0].app_commit == commit  # git here resolves an abbreviated id


def test_a_version_the_repository_lacks_is_refused(remote: Remote, vaulted: Vaulted) -> None:
    with pytest.raises(source_check.SourceUnreachable) as refused:
        source_check.check(vaulted(remote.url, "v9.9.9", remote.key, remote.known_hosts))
    assert str(refused.value) == (f"app_source_version=v9.9.9 is not a tag of {remote.url} (its tags: broken, v1.0.0, "
                                  "v1.1.0): push the tag (git push origin TAG) or set app_source_version to a tag or "
                                  "commit id it has")


def test_a_key_the_remote_does_not_know_is_refused(remote: Remote, vaulted: Vaulted, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    with pytest.raises(source_check.SourceUnreachable) as refused:
        source_check.check(vaulted(remote.url, "v1.0.0", (tmp_path / "other").read_text(), remote.known_hosts))
    message = str(refused.value)
    assert "it refused the credentials: add the public half of app_source_deploy_key" in message
    assert "Permission denied (publickey" in message and "PRIVATE KEY" not in message


def test_a_host_key_other_than_the_pinned_one_is_refused(remote: Remote, vaulted: Vaulted, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    wrong = f"[127.0.0.1]:{remote.port} " + " ".join((tmp_path / "other.pub").read_text().split()[:2])
    with pytest.raises(source_check.SourceUnreachable) as refused:
        source_check.check(vaulted(remote.url, "v1.0.0", remote.key, [wrong]))
    assert "its host key is not one app_source_known_hosts pins" in str(refused.value)


def test_a_host_that_does_not_answer_is_refused(remote: Remote, vaulted: Vaulted) -> None:
    port = free_port()  # nothing listens there
    url = f"ssh://git@127.0.0.1:{port}/srv/git/app.git"
    with pytest.raises(source_check.SourceUnreachable) as refused:
        source_check.check(vaulted(url, "v1.0.0", remote.key, [f"[127.0.0.1]:{port} {UNUSED_HOST_KEY}"]))
    assert "the host does not answer from this machine" in str(refused.value)
    assert "Connection refused" in str(refused.value)


class KeyWatch(threading.Thread):
    """Files holding the key's text while the check runs: where Ansible stages modules
    (~/.ansible/tmp) and the temporary directories of the check."""

    def __init__(self, key: str) -> None:
        super().__init__(daemon=True)
        self.stop, self.needle, self.found = threading.Event(), key.splitlines()[1].encode(), set[Path]()
        self.scans = 0

    def run(self) -> None:
        while not self.stop.wait(0.02):
            roots = [Path.home() / ".ansible" / "tmp", *Path(tempfile.gettempdir()).glob("nodestack-source*")]
            for root in roots:
                for folder, _dirs, files in os.walk(root):  # a directory gone mid-walk is skipped, not raised
                    for name in files:
                        try:
                            if self.needle in (Path(folder) / name).read_bytes():
                                self.found.add(Path(folder) / name)
                        except OSError:
                            continue
            self.scans += 1


def test_the_deploy_key_touches_disk_only_in_the_checks_private_file(remote: Remote, vaulted: Vaulted) -> None:
    before = set(Path(tempfile.gettempdir()).glob("nodestack-source*"))
    settings_ = vaulted(remote.url, "v1.0.0", remote.key, remote.known_hosts)
    watch = KeyWatch(remote.key)
    watch.start()
    try:
        source_check.check(settings_)
    finally:
        watch.stop.set()
        watch.join()
    assert watch.scans > 5  # it watched the whole check
    # the module's own 0600 file in its 0700 directory, nothing else (no module staged with its arguments)
    assert {path.name for path in watch.found} <= {"deploy_key"}, watch.found
    assert all(path.parent.name.startswith("nodestack-source.") for path in watch.found), watch.found
    assert set(Path(tempfile.gettempdir()).glob("nodestack-source*")) <= before


def test_a_bake_of_an_unreachable_repository_launches_nothing(local_cloud: server.Endpoint, tmp_path: Path) -> None:
    port = free_port()
    extra = tmp_path / "source.yml"
    extra.write_text(f"app_source_repo: ssh://git@127.0.0.1:{port}/app.git\napp_source_deploy_key: ''\n"
                     f"app_source_known_hosts: ['[127.0.0.1]:{port} {UNUSED_HOST_KEY}']\n")
    requests_before = local_cloud.request_log.read_text().count("RunInstances")
    result = cli("bake", "--env", "dev", "-e", f"@{extra}", timeout=300,
                 env={**os.environ, "NODESTACK_STATE_DIR": str(local_cloud.request_log.parent)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"[dev] app_source_repo=ssh://git@127.0.0.1:{port}/app.git cannot be read from this machine: the host " \
           "does not answer" in result.stderr
    assert "nothing was launched" in result.stderr
    assert local_cloud.request_log.read_text().count("RunInstances") == requests_before
