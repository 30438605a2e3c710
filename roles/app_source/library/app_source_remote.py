#!/usr/bin/python
"""Ask the app's git remote for its refs (git ls-remote) the way the build host will clone it: the
deploy key as the only identity, the pinned host keys as the only known ones, no credential helper,
no prompt, no user configuration. The bake runs it before it launches a build host, so a wrong URL,
a key the remote does not accept, a host key that changed, or a version the repository does not
have stops the bake with one line naming it, not a build instance later. It answers the commit the
version names (a tag's, or a full commit id itself), which the bake records on the AMI (AppCommit);
an abbreviated commit id is refused: only a clone could resolve it. Reads only."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: app_source_remote
short_description: Check a git remote answers with the deploy key and has the pinned version
description:
  - Runs git ls-remote against the repository with only the deploy key and the pinned host keys.
  - Fails naming the cause (unreachable host, changed host key, refused key, no such repository,
    a version that is not one of its tags, is a branch or is an abbreviated commit id) and the fix.
options:
  repo: {description: The repository URL (no credentials in it)., type: str, required: true}
  version: {description: The tag or full commit id to be checked out., type: str, required: true}
  deploy_key: {description: The private deploy key (text); empty for none., type: str, default: "", no_log: true}
  known_hosts: {description: known_hosts lines pinning the remote's host keys., type: list, elements: str, default: []}
  timeout: {description: Seconds before the remote counts as unreachable., type: int, default: 60}
"""

RETURN = r"""
ref:
  description: The ref that names the version (empty for a commit id, which only the clone can check).
  returned: success
  type: str
commit:
  description: The full commit id the version names (the ref's commit, or the commit id given).
  returned: success
  type: str
refs:
  description: How many refs the remote listed.
  returned: success
  type: int
"""

_FULL_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1, or SHA-256 repositories
_HEX = re.compile(r"[0-9a-f]{4,64}")  # what git takes for an abbreviated commit id
# What ssh and git print, and what it means for the person baking: (pattern, cause and fix).
_CAUSES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known"),
     "its host key is not one app_source_known_hosts pins: ssh-keyscan the host, compare the fingerprint with "
     "the one the git host publishes, and put the line in app_source_known_hosts"),
    (re.compile(r"Permission denied"),
     "it refused the credentials: add the public half of app_source_deploy_key (ssh-keygen -y -f KEYFILE) to the "
     "repository as a read-only deploy key, or correct the key in the Vault file"),
    # an https remote that wants credentials: deploy keys are SSH only, and a token in the URL is refused
    (re.compile(r"Authentication failed|could not read Username|terminal prompts disabled"),
     "it asks for credentials over https: give its SSH URL (git@HOST:ORG/REPO.git) with app_source_deploy_key"),
    (re.compile(r"Could not resolve|Connection refused|Connection timed out|Network is unreachable|"
                r"No route to host|timed out|Connection closed|Connection reset|Failed to connect"),
     "the host does not answer from this machine: check the host and port in app_source_repo, and that this "
     "machine and the build instance's subnet can reach it"),
    (re.compile(r"not found|does not appear to be a git repository|does not exist|No such file"),
     "it has no such repository, or the deploy key cannot see it: check the path in app_source_repo"),
]


def explain(stderr: str) -> str:
    """The cause and fix, and the line of ssh's or git's message that shows it."""
    lines = [line.strip() for line in stderr.splitlines()
             if line.strip() and not line.startswith(("Warning:", "Please make sure", "and the repository"))]
    for pattern, cause in _CAUSES:
        shown = [line for line in lines if pattern.search(line)]
        if shown:
            return f"{cause} (git: {shown[0]})"
    return f"git: {lines[0] if lines else 'no message'}"


def ls_remote(repo: str, deploy_key: str, known_hosts: list[str], timeout: int) -> tuple[int, str, str]:
    """git ls-remote's exit code, stdout and stderr, with the key and host keys in a private directory
    that is removed before returning."""
    with tempfile.TemporaryDirectory(prefix="nodestack-source.") as tmp:
        hosts = Path(tmp) / "known_hosts"
        hosts.write_text("".join(f"{line.strip()}\n" for line in known_hosts if line.strip()))
        ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", f"UserKnownHostsFile={hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
               "-o", f"ConnectTimeout={min(timeout, 20)}"]
        if deploy_key.strip():
            key = Path(tmp) / "deploy_key"
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(deploy_key.strip() + "\n")
            ssh += ["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", str(key)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "LC_ALL": "C",
               "GIT_SSH_COMMAND": shlex.join(ssh), "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false",
               "SSH_ASKPASS": "/bin/false", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
        try:
            result = subprocess.run(["git", "-c", "credential.helper=", "ls-remote", "--", repo],
                                    env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, "", f"no answer within {timeout} s: timed out"
    return result.returncode, result.stdout, result.stderr


def refs_of(listing: str) -> dict[str, str]:
    """{ref: commit} from ls-remote's lines; an annotated tag's peeled line (^{}) gives its commit."""
    refs: dict[str, str] = {}
    for line in listing.splitlines():
        commit, _, ref = line.partition("\t")
        if ref.endswith("^{}"):
            refs[ref[:-3]] = commit
        elif ref:
            refs.setdefault(ref, commit)
    return refs


def check_version(refs: dict[str, str], version: str, repo: str) -> tuple[str, str] | str:
    """(ref, commit) naming version, or the reason it cannot be baked."""
    tag = f"refs/tags/{version}"
    if tag in refs:
        return tag, refs[tag]
    if f"refs/heads/{version}" in refs:
        return (f"app_source_version={version} is a branch of {repo}, which moves: tag the commit to bake "
                f"(git tag v1.2.3 {version} && git push origin v1.2.3) and set app_source_version to the tag")
    if _FULL_COMMIT.fullmatch(version):
        return "", version  # any commit, not only a ref's tip: the clone checks the repository has it
    if _HEX.fullmatch(version):
        return (f"app_source_version={version} is not a tag of {repo} and reads as an abbreviated commit id, "
                "which only a clone could resolve, so the AMI could not record the commit it is built from: give the "
                f"full commit id (git rev-parse {version} in a clone of the repository) or a tag")
    tags = sorted(ref.removeprefix("refs/tags/") for ref in refs if ref.startswith("refs/tags/"))
    shown = ", ".join(tags[:8]) + (f" and {len(tags) - 8} more" if len(tags) > 8 else "") if tags else "none"
    return (f"app_source_version={version} is not a tag of {repo} (its tags: {shown}): push the tag "
            "(git push origin TAG) or set app_source_version to a tag or commit id it has")


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(repo=dict(type="str", required=True), version=dict(type="str", required=True),
                           deploy_key=dict(type="str", default="", no_log=True),
                           known_hosts=dict(type="list", elements="str", default=[]),
                           timeout=dict(type="int", default=60)),
        supports_check_mode=True,
    )
    params: dict[str, Any] = module.params
    repo: str = params["repo"]
    code, out, err = ls_remote(repo, params["deploy_key"], params["known_hosts"], params["timeout"])
    if code != 0:
        module.fail_json(msg=f"app_source_repo={repo} cannot be read from this machine: {explain(err)}")
    refs = refs_of(out)
    found = check_version(refs, params["version"], repo)
    if isinstance(found, str):
        module.fail_json(msg=found)
    module.exit_json(changed=False, ref=found[0], commit=found[1], refs=len(refs))


if __name__ == "__main__":
    main()
