"""nodejs_version: auto: the newest pinned Node.js version that the app's own declaration
(.nvmrc, .node-version or package.json's engines.node) admits, in npm's range syntax."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from semantic_version import NpmSpec, Version

# nvm's aliases for "the newest release": the newest pinned version.
_NEWEST = {"node", "stable", "latest", "current"}


def declared_range(text: str, source: str) -> str:
    """The npm range a version file declares: its first line without comments, a leading v
    or nvm's newest-release aliases; nvm's lts/ aliases name no version and are refused."""
    lines = [line.split("#", 1)[0].strip() for line in str(text).splitlines()]
    declared = next((line for line in lines if line), "")
    if not declared:
        raise AnsibleFilterError(f"{source} declares no Node.js version: write one such as 22.11.0 or 22 in it")
    if declared.lower().startswith("lts/"):
        raise AnsibleFilterError(f"{source} says {declared!r}, an nvm alias whose version changes over time: "
                                 "write the version or major the app runs on (such as 22) instead")
    return "*" if declared.lower() in _NEWEST else declared


def newest_admitted(spec: str, checksums: dict[str, Any], arch: str, source: str) -> str:
    """The newest version pinned in `checksums` ({version: {arch: sha256}}) for `arch` that the npm
    range `spec` admits."""
    versions = [version for version, sums in checksums.items() if isinstance(sums, dict) and arch in sums]
    try:
        wanted = NpmSpec(str(spec).strip())
    except ValueError as exc:
        raise AnsibleFilterError(f"{source} declares {spec!r}, which is not a Node.js version or npm range "
                                 f"(such as 22.11.0, 22, ^22.1.0 or >=20 <23): {exc}") from exc
    candidates = []
    for version in versions:
        try:
            candidates.append(Version(str(version)))
        except ValueError as exc:
            raise AnsibleFilterError(f"nodejs_checksums has {version!r}, which is not an exact version") from exc
    chosen = wanted.select(candidates)
    if chosen is None:
        pinned = ", ".join(sorted(str(v) for v in versions)) or "none"
        raise AnsibleFilterError(f"{source} declares {spec!r}, which no version pinned in nodejs_checksums for "
                                 f"{arch} admits (pinned: {pinned}): add the release it should run to nodejs_checksums "
                                 "(its SHA-256 per architecture, from nodejs.org's signed SHASUMS256.txt)")
    return str(chosen)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"nodejs_declared_range": declared_range, "nodejs_newest_admitted": newest_admitted}
