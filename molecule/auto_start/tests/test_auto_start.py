"""auto_start in pull mode: hardened unit, health-gated start, clear failure, fetch on boot."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

FIXTURE = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".state/git-fixture"
REVISIONS = json.loads((FIXTURE / "revisions.json").read_text())
INSTANCE = "auto_start-instance"
HEALTH = "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:3000/health\").read().decode())'"


def test_unhealthy_revision_fails_with_a_clear_message(host) -> None:  # type: ignore[no-untyped-def]
    record = host.file("/root/auto-start-broken.txt").content_string
    assert record.startswith("rc=1\n"), record
    assert "nodeapp.service failed to start" in record or "is not healthy" in record


@pytest.fixture(scope="module")
def booted(host):  # type: ignore[no-untyped-def]
    """Restart the container: from here on, everything ran through the boot path."""
    subprocess.run(["podman", "restart", "--time", "5", INSTANCE], check=True, capture_output=True, timeout=120)
    host.run("timeout 120 sh -c 'until systemctl is-system-running --wait >/dev/null 2>&1 || "
             "systemctl is-active -q nodeapp; do sleep 1; done'")
    return host


def test_boot_fetched_the_configured_revision_and_serves_it(booted) -> None:  # type: ignore[no-untyped-def]
    assert booted.run("/usr/local/bin/auto_start wait").rc == 0
    health = json.loads(booted.check_output(HEALTH))
    assert health["status"] == "ok" and health["version"] == REVISIONS["v1.1.0"]
    # v1.1.1 existed only on the remote: the checkout has it because the boot fetched it.
    assert (booted.check_output("runuser -u nodeapp -- git -C /srv/nodeapp/app tag --points-at HEAD").split()
            == ["v1.1.0", "v1.1.1"])


def test_auto_start_is_safe_to_run_twice(booted) -> None:  # type: ignore[no-untyped-def]
    pid = booted.check_output("systemctl show -p MainPID --value nodeapp")
    for _ in range(2):
        assert booted.run("/usr/local/bin/auto_start").rc == 0
    assert booted.check_output("systemctl show -p MainPID --value nodeapp") == pid


def test_unit_is_enabled_hardened_and_runs_as_the_service_account(booted) -> None:  # type: ignore[no-untyped-def]
    unit = booted.service("nodeapp")
    assert unit.is_enabled and unit.is_running
    props = dict(line.split("=", 1) for line in booted.check_output(
        "systemctl show nodeapp -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp "
        "-p Restart -p CapabilityBoundingSet").splitlines())
    assert props == {"User": "nodeapp", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                     "PrivateTmp": "yes", "Restart": "on-failure", "CapabilityBoundingSet": ""}
    assert booted.check_output("ps -o user= -p $(systemctl show -p MainPID --value nodeapp)") == "nodeapp"
    assert booted.socket("tcp://0.0.0.0:3000").is_listening


def test_starts_are_in_the_journal(booted) -> None:  # type: ignore[no-untyped-def]
    journal = booted.check_output("journalctl -b -u nodeapp -u nodeapp-fetch --no-pager -o cat")
    assert "auto_start: fetching v1.1.1" in journal and "is healthy at http://127.0.0.1:3000/health" in journal


def test_fetch_runs_as_the_deploy_account_in_its_own_unit(booted) -> None:  # type: ignore[no-untyped-def]
    assert booted.check_output("systemctl show -p User --value nodeapp-fetch") == "nodeapp-deploy"
    assert "nodeapp-fetch.service" in booted.check_output("systemctl show -p Requires --value nodeapp")
    # The boot's fetch (v1.1.1) ran there, not in the app's unit.
    assert "auto_start: fetching v1.1.1" in booted.check_output("journalctl -b -u nodeapp-fetch --no-pager -o cat")
    assert "ExecStartPre" not in booted.file("/etc/systemd/system/nodeapp.service").content_string


def in_app_sandbox(booted, command: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """Run a command as the app's account in the app unit's mount namespace (entering it needs
    CAP_SYS_PTRACE, which a plain podman exec lacks)."""
    pid = booted.check_output("systemctl show -p MainPID --value nodeapp")
    return subprocess.run(["podman", "exec", "--privileged", INSTANCE, "nsenter", "-t", pid, "-m", "--",
                           "runuser", "-u", "nodeapp", "--", "sh", "-c", command],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_app_can_neither_read_the_deploy_key_nor_change_what_git_runs(booted) -> None:  # type: ignore[no-untyped-def]
    key = booted.file("/var/lib/nodeapp-deploy/.ssh/deploy_key")
    assert (key.user, key.mode) == ("nodeapp-deploy", 0o600)  # pull mode keeps it, for the fetch unit
    assert booted.run("runuser -u nodeapp -- cat /var/lib/nodeapp-deploy/.ssh/deploy_key").rc != 0
    for path in (".git/config", ".git/hooks/post-checkout", "server.js"):
        assert booted.run(f"runuser -u nodeapp -- sh -c 'echo x >> /srv/nodeapp/app/{path}'").rc != 0, path
        assert in_app_sandbox(booted, f"echo x >> /srv/nodeapp/app/{path}").returncode != 0, path
    assert in_app_sandbox(booted, "cat /var/lib/nodeapp-deploy/.ssh/deploy_key").returncode != 0


def test_environment_file_is_for_the_app_only(booted) -> None:  # type: ignore[no-untyped-def]
    env = booted.file("/etc/default/nodeapp")
    assert (env.user, env.group, env.mode) == ("root", "nodeapp", 0o640)
    assert "NODEAPP_SECRET=not-for-other-accounts" in env.content_string
    assert booted.run("runuser -u nobody -- cat /etc/default/nodeapp").rc != 0
    pid = booted.check_output("systemctl show -p MainPID --value nodeapp")
    environ = subprocess.run(["podman", "exec", "--privileged", INSTANCE, "cat", f"/proc/{pid}/environ"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    assert "NODEAPP_SECRET=not-for-other-accounts" in environ.split("\0")  # and the app still gets it


def test_unit_filters_system_calls_and_hides_other_processes(booted) -> None:  # type: ignore[no-untyped-def]
    props = dict(line.split("=", 1) for line in booted.check_output(
        "systemctl show nodeapp -p ProtectProc -p SystemCallErrorNumber -p SystemCallFilter").splitlines())
    assert props["SystemCallErrorNumber"] in ("1", "EPERM")
    assert "execve" in props["SystemCallFilter"].split() and "reboot" not in props["SystemCallFilter"].split()
    pid = booted.check_output("systemctl show -p MainPID --value nodeapp")
    assert booted.check_output(f"sed -n 's/^Seccomp:[[:space:]]*//p' /proc/{pid}/status") == "2"  # filter mode
    # Set on the unit; inside a Podman container systemd cannot mount the hidepid /proc it
    # asks for (and runs without it), on an instance it does.
    assert props["ProtectProc"] == "invisible"
