"""The app's repository asked from this machine before a build host is launched
(playbooks/check_app_source.yml, the app_source role's `reachable` entry point): with the build's own
variables and Vault file, so the deploy key and pinned host keys are the ones the build will use, and
only Ansible opens the Vault. Its answer names the full commit id app_source_version names there;
for a repository of this machine (a directory, the bundled sample app's remote) git says it. The
bake records that commit on the AMI (AppCommit) and checks it out (pin)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nodestack.bake import ansible_json, app_source, build_host
from nodestack.bake.settings import EnvSettings
from nodestack.paths import REPO_ROOT

PLAYBOOK = REPO_ROOT / "playbooks" / "check_app_source.yml"


class SourceUnreachable(ValueError):
    """The repository does not answer as the build would ask it; the message names the cause and fix."""


@dataclass(frozen=True)
class Answer:
    said: str  # what the repository answered, one line
    commit: str  # the full commit id app_source_version names there


def check(env_settings: EnvSettings, timeout_s: float = 180) -> Answer:
    """What the repository answered, and the commit; SourceUnreachable naming why not."""
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    with tempfile.TemporaryDirectory(prefix="nodestack-source-check.") as tmp:
        with env_settings.vars_file(Path(tmp)) as variables:
            vault = ["-e", f"@{env_settings.vault_file}"] if env_settings.vault_file else []
            # after the build's variables: an inventory's connection settings never reach this local play
            local = json.dumps({"ansible_connection": "local", "ansible_python_interpreter": sys.executable})
            # Pipelining hands the module (and the deploy key in its arguments) to Python on stdin;
            # without it Ansible writes the module with its arguments under ~/.ansible/tmp.
            with subprocess.Popen(
                    [str(ansible_playbook), str(PLAYBOOK), "-i", "localhost,", "-e", f"@{variables}", *vault,
                     "-e", local],
                    cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    start_new_session=True,
                    env={**os.environ, **ansible_json.CALLBACK_ENV, "ANSIBLE_PIPELINING": "1"}) as run:
                try:
                    stdout, stderr = run.communicate(timeout=timeout_s)
                except subprocess.TimeoutExpired as exc:
                    os.killpg(run.pid, signal.SIGKILL)  # git and ssh too, not only ansible-playbook
                    run.communicate()
                    raise SourceUnreachable(f"{env_settings.app_repo} did not answer within {timeout_s:.0f} s: "
                                            "check that this machine reaches the git host") from exc
    outcomes = ansible_json.outcomes(stdout)
    if run.returncode != 0:
        failed = [str(outcome.get("msg", "failed")) for outcome in outcomes if outcome.get("failed")]
        raise SourceUnreachable(failed[0] if failed else (stderr or stdout).strip()[-2000:])
    said = [str(outcome["msg"]) for outcome in outcomes if "msg" in outcome]
    commits = [str(outcome["commit"]) for outcome in outcomes if outcome.get("commit")]
    if not commits:
        raise SourceUnreachable(f"{env_settings.app_repo} answered, but not which commit app_source_version="
                                f"{env_settings.app_revision} names there: {(stderr or stdout).strip()[-2000:]}")
    return Answer(said[-1] if said else f"{env_settings.app_repo} answers", commits[-1])


def pin(env_settings: EnvSettings) -> tuple[EnvSettings, str]:
    """env_settings building the commit app_source_version names now (EnvSettings.pinned), and what
    was said of it: another host's repository asked as the build will ask it (check); a directory of
    this machine, or the bundled sample app's remote (made first), read with git."""
    if env_settings.app_repo:
        answer = check(env_settings)
        return env_settings.pinned(answer.commit), answer.said
    try:
        repository = env_settings.team_repo or build_host.sample_remote()
    except (OSError, subprocess.SubprocessError) as exc:
        raise SourceUnreachable(f"cannot make the sample app's git remote (scripts/test-fixtures.sh): {exc}") from exc
    commit = app_source.commit_of(repository, env_settings.app_revision)
    if not commit:
        raise SourceUnreachable(f"app_source_version={env_settings.app_revision} is not a commit of {repository}: "
                                "set app_source_version to a tag or commit id it has")
    return env_settings.pinned(commit), f"{repository}: {env_settings.app_revision} is commit {commit}"
