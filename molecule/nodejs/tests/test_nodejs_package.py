"""The package method installs the distribution's nodejs at the pinned version."""

from __future__ import annotations

VERSION = "18.20.4"
testinfra_hosts = ["podman://nodejs-package"]


def test_distribution_package_at_the_pinned_version(host) -> None:  # type: ignore[no-untyped-def]
    assert host.package("nodejs").version.startswith(f"{VERSION}+")
    assert host.check_output("node --version") == f"v{VERSION}"


def test_no_tarball_install(host) -> None:  # type: ignore[no-untyped-def]
    assert not host.file("/opt/nodejs").exists
