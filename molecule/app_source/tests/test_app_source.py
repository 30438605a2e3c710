"""The app is checked out at the pinned revision through the deploy key and the pinned host key,
owned by the deploy account, and (as in a baked image) no key or git ssh command is left after the run."""

from __future__ import annotations

import json
import os
from pathlib import Path

FIXTURE = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".state/git-fixture"
REVISIONS = json.loads((FIXTURE / "revisions.json").read_text())
APP = "/srv/nodeapp/app"
DEPLOY_HOME = "/var/lib/nodeapp-deploy"


def git(host, *args: str, user: str = "nodeapp-deploy") -> str:  # type: ignore[no-untyped-def]
    return host.check_output(f"runuser -u {user} -- git -C %s " + " ".join(args), APP)


def test_checkout_is_at_the_new_revision(host) -> None:  # type: ignore[no-untyped-def]
    assert git(host, "rev-parse HEAD") == REVISIONS["v1.1.0"]
    assert git(host, "status --porcelain") == ""
    checkout = host.file(APP)
    assert (checkout.user, checkout.group, checkout.mode) == ("nodeapp-deploy", "nodeapp", 0o750)


def test_the_app_reads_its_revision_but_cannot_change_the_checkout(host) -> None:  # type: ignore[no-untyped-def]
    assert git(host, "rev-parse HEAD", user="nodeapp") == REVISIONS["v1.1.0"]
    assert host.run("runuser -u nodeapp -- sh -c 'echo >> %s/.git/config'", APP).rc != 0
    assert host.run("runuser -u nodeapp -- touch %s/server.js", APP).rc != 0


def test_revision_change_restarted_the_app(host) -> None:  # type: ignore[no-untyped-def]
    before = host.file("/root/invocation-before").content_string.strip()
    assert before and host.check_output("systemctl show -p InvocationID --value nodeapp") != before


def test_no_deploy_key_or_ssh_command_left_after_the_run(host) -> None:  # type: ignore[no-untyped-def]
    """The checkout (and the move to v1.1.0) went through the key; none of it stays."""
    assert not host.file(f"{DEPLOY_HOME}/.ssh/deploy_key").exists
    assert not host.file("/srv/nodeapp/.ssh/deploy_key").exists  # where earlier runs put it (prepare.yml)
    assert host.run("runuser -u nodeapp-deploy -- git -C %s config --get core.sshCommand", APP).rc == 1
    assert host.run("grep -rl 'PRIVATE KEY' /srv/nodeapp /var/lib/nodeapp-deploy /tmp").stdout == ""


def test_pinned_host_key(host) -> None:  # type: ignore[no-untyped-def]
    known = host.file(f"{DEPLOY_HOME}/.ssh/known_hosts").content_string
    assert (FIXTURE / "host_key.pub").read_text().split()[1] in known


def test_wrong_host_key_is_refused(host) -> None:  # type: ignore[no-untyped-def]
    refusal = host.file("/root/wrong-host-key.txt")
    assert refusal.exists, "a remote with an unpinned host key was accepted"
    assert "Host key verification failed" in refusal.content_string
    assert not host.file("/srv/nodeapp/wrong-host/.git").exists
