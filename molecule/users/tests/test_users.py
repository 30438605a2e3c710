"""Team accounts and the service account, as sshd and sudo see them."""

from __future__ import annotations

import os
from pathlib import Path

KEY = (Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".state/git-fixture/deploy_key.pub").read_text().strip()
# The container's own sshd on its loopback, its host key pinned from the key files sshd uses.
PIN = ("for key in $(sshd -T | awk '/^hostkey /{print $2}'); "
       "do echo \"127.0.0.1 $(ssh-keygen -y -f $key)\"; done > /root/known_hosts")
SSH = "ssh -i /root/test_key -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/root/known_hosts"


def test_authorized_keys_hold_exactly_the_listed_keys(host) -> None:  # type: ignore[no-untyped-def]
    for name in ("alice", "bob"):
        keys = host.file(f"/home/{name}/.ssh/authorized_keys")
        assert keys.content_string.splitlines() == [KEY], "a stale or missing key"
        assert (keys.user, keys.mode) == (name, 0o600)
        assert host.file(f"/home/{name}/.ssh").mode == 0o700


def test_team_members_log_in_with_their_key(host) -> None:  # type: ignore[no-untyped-def]
    host.run(PIN)
    assert host.check_output(f"{SSH} alice@127.0.0.1 id -un") == "alice"
    assert host.check_output(f"{SSH} bob@127.0.0.1 id -un") == "bob"
    assert host.user("bob").shell == "/bin/sh"


def test_sudo_only_for_those_granted(host) -> None:  # type: ignore[no-untyped-def]
    host.run(PIN)
    assert host.check_output(f"{SSH} alice@127.0.0.1 sudo -n id -u") == "0"
    assert host.run(f"{SSH} bob@127.0.0.1 sudo -n id -u").rc != 0
    assert host.user("alice").groups == ["alice", "adm"]


def test_absent_accounts_are_locked_or_removed(host) -> None:  # type: ignore[no-untyped-def]
    host.run(PIN)
    carol = host.user("carol")
    assert carol.exists and carol.shell == "/usr/sbin/nologin"
    assert carol.password.startswith("!")
    # shadow field 8: account expiry in days since the epoch; set means expired
    assert host.check_output("getent shadow carol | cut -d: -f8") in ("0", "1")
    assert not host.file("/home/carol/.ssh/authorized_keys").exists
    assert host.run(f"{SSH} carol@127.0.0.1 true").rc != 0
    assert not host.user("dave").exists and not host.file("/home/dave").exists


def test_no_account_has_a_usable_password(host) -> None:  # type: ignore[no-untyped-def]
    for name in ("alice", "bob", "nodeapp"):
        assert host.user(name).password in ("!", "!*", "*"), name


def test_service_account_has_no_login(host) -> None:  # type: ignore[no-untyped-def]
    service = host.user("nodeapp")
    assert service.shell == "/usr/sbin/nologin" and service.uid < 1000
    assert service.home == "/srv/nodeapp" and host.file("/srv/nodeapp").mode == 0o750


def test_absent_accounts_run_nothing_and_have_no_crontab(host) -> None:  # type: ignore[no-untyped-def]
    # prepare.yml left a sleep running as each, and a crontab for carol
    assert host.run("pgrep -u carol").rc == 1, "a locked account still runs processes"
    for name in ("carol", "dave"):
        assert host.run(f"systemctl is-active -q {name}-left-running").rc != 0, name
    assert host.run("crontab -l -u carol").rc != 0
    assert not host.file("/var/spool/cron/crontabs/carol").exists


def test_deploy_account_has_no_login_and_a_private_home(host) -> None:  # type: ignore[no-untyped-def]
    deploy = host.user("nodeapp-deploy")
    assert deploy.shell == "/usr/sbin/nologin" and deploy.uid < 1000 and deploy.password in ("!", "!*", "*")
    assert "nodeapp" in deploy.groups  # reaches the checkout under /srv/nodeapp (0750)
    home = host.file("/var/lib/nodeapp-deploy")
    assert (home.user, home.mode) == ("nodeapp-deploy", 0o700)
