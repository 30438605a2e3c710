"""nodejs_version: auto picks the newest pinned release the app's declaration admits
(roles/nodejs/filter_plugins/nodejs_versions.py), and refuses what names no version."""

from __future__ import annotations

import importlib.util

import pytest
from ansible.errors import AnsibleFilterError

from tests.conftest import REPO

_PLUGIN = REPO / "roles/nodejs/filter_plugins/nodejs_versions.py"
_spec = importlib.util.spec_from_file_location("nodejs_versions", _PLUGIN)
assert _spec and _spec.loader
versions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(versions)

SUM = "0" * 64
PINNED = {"20.18.0": {"x64": SUM, "arm64": SUM}, "22.11.0": {"x64": SUM, "arm64": SUM},
          "22.12.0": {"x64": SUM}, "23.3.0": {"x64": SUM, "arm64": SUM}}


@pytest.mark.parametrize(("declared", "arch", "expected"), [
    ("22.11.0\n", "x64", "22.11.0"),
    ("v22.11.0", "x64", "22.11.0"),
    ("22", "x64", "22.12.0"),
    ("22", "arm64", "22.11.0"),  # 22.12.0 has no arm64 sum: not a candidate there
    ("# the runtime\n\n  v20  # pinned by ops\n", "x64", "20.18.0"),
    ("^22.1.0", "x64", "22.12.0"),
    ("~22.11", "x64", "22.11.0"),
    (">=20 <23", "x64", "22.12.0"),
    ("20 || 22", "x64", "22.12.0"),
    ("node", "x64", "23.3.0"),
    (">=18", "arm64", "23.3.0"),
])
def test_the_newest_pinned_version_the_declaration_admits(declared: str, arch: str, expected: str) -> None:
    spec = versions.declared_range(declared, "/srv/app/.nvmrc")
    assert versions.newest_admitted(spec, PINNED, arch, "/srv/app/.nvmrc") == expected


@pytest.mark.parametrize(("declared", "message"), [
    ("", "/srv/app/.nvmrc declares no Node.js version"),
    ("# only a comment\n", "/srv/app/.nvmrc declares no Node.js version"),
    ("lts/iron", "'lts/iron', an nvm alias whose version changes over time"),
])
def test_a_declaration_naming_no_version_is_refused(declared: str, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        versions.declared_range(declared, "/srv/app/.nvmrc")


@pytest.mark.parametrize(("spec", "message"), [
    ("21", r"declares '21', which no version pinned in nodejs_checksums for x64 admits \(pinned: 20.18.0, 22.11.0, "
           r"22.12.0, 23.3.0\): add the release"),
    ("twenty-two", "declares 'twenty-two', which is not a Node.js version or npm range"),
])
def test_a_range_no_pinned_version_meets_is_refused_naming_the_fix(spec: str, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        versions.newest_admitted(spec, PINNED, "x64", "/srv/app/.nvmrc")
