"""The pinned Node.js is installed, verified, and survives a tampered release."""

from __future__ import annotations

VERSION = "22.11.0"
ROOT = "/opt/nodejs"
testinfra_hosts = ["podman://nodejs-instance"]  # the tarball method; test_nodejs_package.py has the other


def test_node_runs_the_pinned_version(host) -> None:  # type: ignore[no-untyped-def]
    assert host.check_output("node --version") == f"v{VERSION}"
    assert host.run("node -e 'process.exit(require(\"http\") ? 0 : 1)'").rc == 0


def test_versioned_directory_behind_stable_links(host) -> None:  # type: ignore[no-untyped-def]
    assert host.file(f"{ROOT}/current").linked_to == f"{ROOT}/node-v{VERSION}-linux-x64"
    assert host.file("/usr/local/bin/node").linked_to == f"{ROOT}/node-v{VERSION}-linux-x64/bin/node"


def test_tampered_release_failed_and_left_the_previous_version(host) -> None:  # type: ignore[no-untyped-def]
    failure = host.file("/root/tampered-release-failure.txt")
    assert failure.exists, "the tampered release did not fail"
    assert "checksum" in failure.content_string.lower()
    assert not host.file(f"{ROOT}/node-v22.11.1-linux-x64").exists
    assert host.check_output("node --version") == f"v{VERSION}"
