"""What the app_source role's remote check makes of git ls-remote's answer and of ssh's messages."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("app_source_remote",
                                                  REPO / "roles/app_source/library/app_source_remote.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


remote = _module()
LISTING = ("1111111111111111111111111111111111111111\tHEAD\n"
           "1111111111111111111111111111111111111111\trefs/heads/main\n"
           "2222222222222222222222222222222222222222\trefs/heads/release\n"
           "3333333333333333333333333333333333333333\trefs/tags/v1.0.0\n"
           "4444444444444444444444444444444444444444\trefs/tags/v1.1.0\n"
           "5555555555555555555555555555555555555555\trefs/tags/v1.1.0^{}\n")
URL = "git@github.com:org/app.git"


def test_an_annotated_tag_names_its_commit_not_the_tag_object() -> None:
    assert remote.check_version(remote.refs_of(LISTING), "v1.1.0", URL) == (
        "refs/tags/v1.1.0", "5555555555555555555555555555555555555555")
    assert remote.check_version(remote.refs_of(LISTING), "v1.0.0", URL)[1] == "3333333333333333333333333333333333333333"


def test_a_branch_is_refused_because_it_moves() -> None:
    said = remote.check_version(remote.refs_of(LISTING), "release", URL)
    assert said.startswith(f"app_source_version=release is a branch of {URL}, which moves: tag the commit")


def test_a_full_commit_id_is_the_commit_and_a_missing_tag_names_the_tags() -> None:
    commit = "6" * 40  # any commit, not only a ref's tip: the clone checks it
    assert remote.check_version(remote.refs_of(LISTING), commit, URL) == ("", commit)
    said = remote.check_version(remote.refs_of(LISTING), "v2.0.0", URL)
    assert f"app_source_version=v2.0.0 is not a tag of {URL} (its tags: v1.0.0, v1.1.0)" in said


def test_ssh_messages_name_their_cause_past_gits_boilerplate() -> None:
    refused = ("git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.\n\n"
               "Please make sure you have the correct access rights\nand the repository exists.\n")
    assert remote.explain(refused).startswith("it refused the credentials")
    assert remote.explain(refused).endswith("(git: git@github.com: Permission denied (publickey).)")
    changed = "@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n"
    assert remote.explain(changed).startswith("its host key is not one app_source_known_hosts pins")
    assert remote.explain("ssh: Could not resolve hostname gitlab.example: Name or service not known\n").startswith(
        "the host does not answer")
    assert remote.explain("ERROR: Repository not found.\nfatal: Could not read from remote repository.\n").startswith(
        "it has no such repository")
    assert remote.explain("fatal: something new\n") == "git: fatal: something new"


def test_an_https_remote_that_wants_credentials_is_sent_to_its_ssh_url() -> None:
    said = remote.explain("fatal: could not read Username for 'https://github.com': terminal prompts disabled\n")
    assert said.startswith("it asks for credentials over https: give its SSH URL (git@HOST:ORG/REPO.git)")


def test_an_abbreviated_commit_id_is_refused_naming_the_full_ones_command() -> None:
    """Only a clone could resolve it, after the AMI's origin tags are set: the AMI would not record its commit."""
    said = remote.check_version(remote.refs_of(LISTING), "abc1234", URL)
    assert said.startswith(f"app_source_version=abc1234 is not a tag of {URL} and reads as an abbreviated commit id")
    assert "give the full commit id (git rev-parse abc1234 in a clone of the repository) or a tag" in said
    # a tag that reads as hex is still the tag
    assert remote.check_version(remote.refs_of(LISTING + "7" * 40 + "\trefs/tags/beef\n"), "beef", URL) == (
        "refs/tags/beef", "7" * 40)
