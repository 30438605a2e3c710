"""The base role's effect on a real host: packages, locale, timezone, sshd effective config."""

from __future__ import annotations


def test_common_packages_installed(host) -> None:  # type: ignore[no-untyped-def]
    for name in ("vim", "curl", "unattended-upgrades", "acl"):  # acl: to become an unprivileged account
        assert host.package(name).is_installed


def test_timezone_and_locale(host) -> None:  # type: ignore[no-untyped-def]
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Etc/UTC"
    assert "en_US.utf8" in host.check_output("locale -a")
    assert host.file("/etc/default/locale").content_string.strip() == "LANG=en_US.UTF-8"


def test_sshd_effective_config_is_hardened(host) -> None:  # type: ignore[no-untyped-def]
    effective = host.check_output("/usr/sbin/sshd -T").lower().splitlines()
    assert "permitrootlogin no" in effective
    assert "passwordauthentication no" in effective
    assert "kbdinteractiveauthentication no" in effective
    assert host.service("ssh").is_running


def test_shell_and_vim_defaults(host) -> None:  # type: ignore[no-untyped-def]
    assert "HISTSIZE=10000" in host.check_output("bash -lc 'echo HISTSIZE=$HISTSIZE'")
    assert host.file("/etc/vim/vimrc.local").contains("syntax on")


def test_unattended_upgrades_enabled(host) -> None:  # type: ignore[no-untyped-def]
    assert host.file("/etc/apt/apt.conf.d/20auto-upgrades").contains('Unattended-Upgrade "1"')
