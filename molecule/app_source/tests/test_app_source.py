"""The app is checked out at the pinned revision through the deploy key and the pinned host key."""

from __future__ import annotations

import json
import os
from pathlib import Path

FIXTURE = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".state/git-fixture"
REVISIONS = json.loads((FIXTURE / "revisions.json").read_text())
APP = "/srv/nodeapp/app"


def git(host, *args: str) -> str:  # type: ignore[no-untyped-def]
    return host.check_output("runuser -u nodeapp -- git -C %s " + " ".join(args), APP)


def test_checkout_is_at_the_new_revision(host) -> None:  # type: ignore[no-untyped-def]
    assert git(host, "rev-parse HEAD") == REVISIONS["v1.1.0"]
    assert git(host, "status --porcelain") == ""
    assert host.file(APP).user == "nodeapp"


def test_revision_change_restarted_the_app(host) -> None:  # type: ignore[no-untyped-def]
    before = host.file("/root/invocation-before").content_string.strip()
    assert before and host.check_output("systemctl show -p InvocationID --value nodeapp") != before


def test_deploy_key_and_pinned_host_key(host) -> None:  # type: ignore[no-untyped-def]
    key = host.file("/srv/nodeapp/.ssh/deploy_key")
    assert (key.user, key.mode) == ("nodeapp", 0o600)
    known = host.file("/srv/nodeapp/.ssh/known_hosts").content_string
    assert (FIXTURE / "host_key.pub").read_text().split()[1] in known
    command = git(host, "config core.sshCommand")
    assert "StrictHostKeyChecking=yes" in command and "StrictHostKeyChecking=no" not in command


def test_later_fetches_work_as_the_service_account(host) -> None:  # type: ignore[no-untyped-def]
    """auto_start's pull mode fetches with plain git: the checkout's config carries key and host key."""
    assert host.run("runuser -u nodeapp -- git -C %s fetch --tags origin", APP).rc == 0


def test_wrong_host_key_is_refused(host) -> None:  # type: ignore[no-untyped-def]
    refusal = host.file("/root/wrong-host-key.txt")
    assert refusal.exists, "a remote with an unpinned host key was accepted"
    assert "Host key verification failed" in refusal.content_string
    assert not host.file("/srv/nodeapp/wrong-host/.git").exists
