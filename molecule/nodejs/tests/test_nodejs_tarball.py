"""The pinned Node.js is installed, verified against its pinned checksum, owned by root,
and survives a tampered release."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

VERSION = "22.11.0"
ROOT = "/opt/nodejs"
MIRROR = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".state/node-mirror"
testinfra_hosts = ["podman://nodejs-instance"]  # the tarball method; test_nodejs_package.py has the other


def test_node_runs_the_pinned_version(host) -> None:  # type: ignore[no-untyped-def]
    assert host.check_output("node --version") == f"v{VERSION}"
    assert host.run("node -e 'process.exit(require(\"http\") ? 0 : 1)'").rc == 0


def test_versioned_directory_behind_stable_links(host) -> None:  # type: ignore[no-untyped-def]
    assert host.file(f"{ROOT}/current").linked_to == f"{ROOT}/node-v{VERSION}-linux-x64"
    assert host.file("/usr/local/bin/node").linked_to == f"{ROOT}/node-v{VERSION}-linux-x64/bin/node"


def test_mirror_tarball_carries_the_official_owners() -> None:
    """nodejs.org's tarballs are owned by uid/gid 1001: the test mirror's must be too."""
    with tarfile.open(MIRROR / f"v{VERSION}/node-v{VERSION}-linux-x64.tar.gz") as tar:
        owners = {(member.uid, member.gid) for member in tar.getmembers()}
    assert owners == {(1001, 1001)}


def test_install_owned_by_root_with_a_team_account_at_uid_1001(host) -> None:  # type: ignore[no-untyped-def]
    # prepare.yml made it before the role ran: the tarball's owners name this account.
    assert host.user("teammate").uid == 1001 and host.group("teammate").gid == 1001
    foreign = host.check_output(f"find {ROOT} \\( ! -user root -o ! -group root \\) -printf '%u:%g %p\\n'")
    assert foreign == "", f"owned by someone other than root:\n{foreign}"
    node = host.file(f"{ROOT}/node-v{VERSION}-linux-x64/bin/node")
    assert (node.user, node.group) == ("root", "root") and not node.mode & 0o022


def test_tampered_release_failed_and_left_the_previous_version(host) -> None:  # type: ignore[no-untyped-def]
    # The hostile mirror's own SHASUMS256.txt matches its tampered tarball: only the pin catches it.
    tampered = MIRROR / "v22.11.1"
    served = hashlib.sha256((tampered / "node-v22.11.1-linux-x64.tar.gz").read_bytes()).hexdigest()
    assert (tampered / "SHASUMS256.txt").read_text().split()[0] == served
    failure = host.file("/root/tampered-release-failure.txt")
    assert failure.exists, "the tampered release did not fail"
    assert "checksum" in failure.content_string.lower()
    assert not host.file(f"{ROOT}/node-v22.11.1-linux-x64").exists
    assert host.check_output("node --version") == f"v{VERSION}"


def test_auto_takes_the_apps_declaration(host) -> None:  # type: ignore[no-untyped-def]
    # side_effect.yml: .nvmrc v22.11.0 (over its package.json's >=24) and engines.node
    # ">=22 <22.11.1" both installed 22.11.0; nodejs_activate false left the links alone
    recorded = host.file("/root/auto-node.txt").content_string.split()
    assert recorded == [f"{ROOT}/node-v{VERSION}-linux-x64/bin/node", VERSION]
    assert host.file(f"{ROOT}/current").linked_to == f"{ROOT}/node-v{VERSION}-linux-x64"


def test_auto_refuses_an_engine_no_pinned_release_admits(host) -> None:  # type: ignore[no-untyped-def]
    refused = host.file("/root/auto-refused.txt")
    assert refused.exists, "engines.node >=24 was installed from nothing pinned"
    assert ("/srv/engines-app/package.json declares '>=24', which no version pinned in nodejs_checksums for x64 admits"
            in refused.content_string)
    assert not host.file(f"{ROOT}/node-v24.0.0-linux-x64").exists
