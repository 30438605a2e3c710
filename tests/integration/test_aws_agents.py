"""roles/aws_agents installs an AWS agent only when its package is AWS's: the signing key's
fingerprint must be the pinned one, and the package's signature must verify against that key
alone. Checked here with a key of the test's own over file:// URLs (its tasks/verify.yml, which
installs nothing); the pinned SSM key file is checked against its pinned fingerprint."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BIN, REPO

ROLE = REPO / "roles" / "aws_agents"


def gpg(home: Path, *args: str) -> str:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], check=True, capture_output=True,
                          text=True, timeout=120).stdout


def make_key(home: Path, name: str) -> str:
    """A signing key of the test's own in home; returns its fingerprint."""
    home.mkdir(mode=0o700)
    gpg(home, "--passphrase", "", "--quick-gen-key", f"{name} <{name}@nodestack.test>", "rsa2048", "sign", "never")
    return next(line.split(":")[9] for line in gpg(home, "--with-colons", "--list-keys").splitlines()
                if line.startswith("fpr:"))


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 'package', AWS's stand-in key (exported) and its signature; an attacker's key and signature."""
    root = tmp_path_factory.mktemp("agents")
    package = root / "agent.deb"
    package.write_bytes(b"!<arch>\nnot really a package, only bytes to sign\n")
    aws, attacker = root / "aws", root / "attacker"
    fingerprint = make_key(aws, "aws")
    make_key(attacker, "attacker")
    (root / "key.asc").write_text(gpg(aws, "--armor", "--export"))
    gpg(aws, "--detach-sign", "--output", str(root / "agent.deb.sig"), str(package))
    forged = root / "forged"
    forged.mkdir()
    (forged / "agent.deb").write_bytes(package.read_bytes())
    gpg(attacker, "--detach-sign", "--output", str(forged / "agent.deb.sig"), str(package))
    return {"root": root, "fingerprint": fingerprint}


def verify(agent: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    given = tmp_path / "agent.json"
    given.write_text(json.dumps({"agent": agent}))
    return subprocess.run([str(BIN / "ansible-playbook"), "tests/integration/playbooks/verify_agent_package.yml",
                           "-e", f"@{given}"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_FORCE_COLOR": "0", "HOME": str(tmp_path)})


def agent(signed: dict[str, Any], **given: str) -> dict[str, str]:
    root = signed["root"]
    return {"name": "agent", "service": "agent", "deb": f"file://{root}/agent.deb", "key_url": f"file://{root}/key.asc",
            "key_file": "", "fingerprint": signed["fingerprint"], **given}


def flat(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join(result.stdout.split())


def test_a_package_signed_with_the_pinned_key_verifies(signed: dict[str, Any], tmp_path: Path) -> None:
    result = verify(agent(signed), tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    lower = verify(agent(signed, fingerprint=" ".join(signed["fingerprint"][i:i + 4] for i in range(0, 40, 4)).lower()),
                   tmp_path)  # as AWS's pages print it
    assert lower.returncode == 0, lower.stdout[-3000:]


def test_a_key_of_another_fingerprint_is_refused(signed: dict[str, Any], tmp_path: Path) -> None:
    pinned = "0" * 40
    result = verify(agent(signed, fingerprint=pinned), tmp_path)
    assert result.returncode != 0
    assert (f"agent's signing key file holds 1 key(s), the first of fingerprint {signed['fingerprint']}, not the "
            f"pinned {pinned} alone: nothing was installed") in flat(result)


def test_a_second_key_beside_the_pinned_one_is_refused(signed: dict[str, Any], tmp_path: Path) -> None:
    """AWS's key first, an attacker's after it, and the package signed by the attacker's."""
    root = signed["root"]
    (tmp_path / "keys.asc").write_text((root / "key.asc").read_text() + gpg(root / "attacker", "--armor", "--export"))
    result = verify(agent(signed, key_url=f"file://{tmp_path}/keys.asc", deb=f"file://{root}/forged/agent.deb"),
                    tmp_path)
    assert result.returncode != 0
    assert (f"agent's signing key file holds 2 key(s), the first of fingerprint {signed['fingerprint']}, not the "
            f"pinned {signed['fingerprint']} alone: nothing was installed") in flat(result), result.stdout[-3000:]


@pytest.mark.parametrize("tamper", ["changed", "forged"])
def test_a_package_that_does_not_verify_is_refused(signed: dict[str, Any], tmp_path: Path, tamper: str) -> None:
    root = signed["root"]
    if tamper == "changed":  # the bytes changed after signing
        (tmp_path / "agent.deb").write_bytes((root / "agent.deb").read_bytes() + b"\nbackdoor\n")
        (tmp_path / "agent.deb.sig").write_bytes((root / "agent.deb.sig").read_bytes())
        deb = f"file://{tmp_path}/agent.deb"
    else:  # signed by another key than the pinned one
        deb = f"file://{root}/forged/agent.deb"
    result = verify(agent(signed, deb=deb), tmp_path)
    assert result.returncode != 0
    assert f"{deb} does not verify against AWS's key {signed['fingerprint']}" in flat(result), result.stdout[-3000:]
    assert "no agent was installed" in flat(result)


def test_the_shipped_ssm_key_is_the_pinned_one(tmp_path: Path) -> None:
    pinned = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["aws_agents_ssm_key_fingerprint"]
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    shipped = ROLE / "files" / "amazon-ssm-agent.asc"
    listed = gpg(home, "--show-keys", "--with-colons", "--with-fingerprint", str(shipped))
    assert [line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:")] == [pinned]
    assert len([line for line in listed.splitlines() if line.startswith("pub:")]) == 1
