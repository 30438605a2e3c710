"""Which app a bake checks out: app_source_repo as the build host reaches it, checked before
anything is launched (a directory of this machine is mounted into the local build host)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from nodestack.bake.build_host import SAMPLE_REPO, TEAM_REPO_MOUNT
from nodestack.paths import REPO_ROOT

# Local mode with no app_source_repo configured: the bundled sample app (app/), from the git
# remote scripts/git-fixture.sh makes of it, mounted into the build host.
LOCAL_SAMPLE_APP: dict[str, Any] = {
    "app_source_repo": f"file://{SAMPLE_REPO}",
    "app_source_deploy_key": "",
    "app_source_known_hosts": [],
}


class AppSourceError(ValueError):
    """app_source_repo / app_source_version cannot be baked; the message names the fix."""


@dataclass(frozen=True)
class AppSource:
    """What the build checks out: app_source_* values over the inventory's, said in `note`."""

    values: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    team_repo: Path | None = None  # a directory of this machine, mounted into the local build host


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _repo_directory(repo: str, source: Path) -> Path | None:
    """The directory app_source_repo names on this machine: a file:// URL, an absolute or ~ path, or a
    path relative to the repository root. None for another host's URL (https://, ssh://, git@host:path:
    as git reads it, a colon before any slash)."""
    if repo.lower().startswith("file:"):
        url = urlsplit(repo)
        if url.netloc not in ("", "localhost") or not url.path.startswith("/"):
            raise AppSourceError(f"app_source_repo={repo} in {source} is not a file:// URL of this machine: "
                                  "write it as file:///absolute/path/to/repo, or give the path itself")
        return Path(unquote(url.path))
    if re.match(r"[^/]*:", repo):
        return None
    try:
        path = Path(repo).expanduser()
    except RuntimeError as exc:  # ~user of no such user
        raise AppSourceError(f"app_source_repo={repo} in {source}: {exc}") from exc
    return path if path.is_absolute() else REPO_ROOT / path


def _git_dir(path: Path) -> Path | None:
    """The repository's git directory: path/.git (a working tree) or path itself (bare); None if neither."""
    for candidate in (path / ".git", path):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir() and (candidate / "refs").is_dir():
            return candidate
    return None


def _private_part(top: Path, git_dir: Path) -> Path | None:
    """The first of what a clone reads (top, git_dir's HEAD, config, packed-refs, refs/, objects/) that
    other accounts cannot read (directories: list and enter); git in the build host runs as one."""
    def private(path: Path, wanted: int) -> bool:
        try:
            return path.stat().st_mode & wanted != wanted
        except OSError:  # a dangling link: not this check's concern
            return False
    for path in (top, git_dir):
        if private(path, 0o005):
            return path
    for name in ("HEAD", "config", "packed-refs"):
        if (git_dir / name).is_file() and private(git_dir / name, 0o004):
            return git_dir / name
    for tree in (git_dir / "refs", git_dir / "objects"):
        for root, _dirs, files in os.walk(tree):
            if private(Path(root), 0o005):
                return Path(root)
            for name in files:
                if private(Path(root) / name, 0o004):
                    return Path(root) / name
    return None


def commit_of(repository: Path, revision: str) -> str:
    """The full commit id revision names in the repository of this machine (a working tree, its .git,
    or a bare one); "" when it names none."""
    git_dir = _git_dir(repository) or repository
    result = subprocess.run(["git", "-c", "safe.directory=*", f"--git-dir={git_dir}", "rev-parse", "--verify",
                             "--quiet", "--end-of-options", f"{revision}^{{commit}}"],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def _team_repo(repo: str, path: Path, revision: str, source: Path) -> Path:
    """path, checked to be a git repository the build host can mount and clone at revision."""
    where = f"app_source_repo={repo} in {source}"
    if not path.exists():
        raise AppSourceError(f"{where}: {path} does not exist: give your app's git repository as a path on this "
                              f"machine (absolute, ~/..., or relative to {REPO_ROOT}), a file:// URL, or a URL "
                              "the build host reaches (git@github.com:org/app.git, https://...)")
    git_dir = _git_dir(path)
    if git_dir is None:
        raise AppSourceError(f"{where}: {path} is not a git repository (a bare one, or a working tree with .git): "
                              "give the repository's top directory")
    mounted = path.resolve()
    if ":" in str(mounted):
        raise AppSourceError(f"{where}: {mounted} holds a ':', which podman cannot mount: link or move the "
                              "repository to a path without one")
    private = _private_part(path, git_dir)
    if private is not None:
        fix = f"chmod -R a+rX {git_dir}" + (f" && chmod a+rx {path}" if git_dir != path else "")
        raise AppSourceError(f"{where}: {private} is not readable by other accounts, and git in the build host "
                              f"runs as one: make the repository readable ({fix})")
    if not commit_of(git_dir, revision):
        raise AppSourceError(f"app_source_version={revision} is not a commit of {path} (app_source_repo in {source}): "
                              f"tag the commit to bake (git -C {path} tag {revision} <commit>) or set "
                              "app_source_version to a tag or commit id it has")
    return mounted


def resolve(repo: str, local: bool, revision: str, source: Path) -> AppSource:
    """app_source_repo as resolved, in local mode: not set, the bundled sample app; a directory of this
    machine (path or file://), mounted read-only into the build host and cloned from there; any other
    URL as configured. On AWS: it must be set, and be a URL the build instance reaches."""
    if not repo:
        if not local:
            raise AppSourceError(f"app_source_repo is not set in {source}: set it to your app's git repository "
                                  "(git@github.com:org/app.git with app_source_deploy_key, or https://...) "
                                  "before baking for AWS")
        return AppSource(LOCAL_SAMPLE_APP,
                          f"app_source_repo is not set in {_shown(source)}: baking the bundled sample app (app/)")
    path = _repo_directory(repo, source)
    if path is None:
        return AppSource()
    if not local:
        raise AppSourceError(f"app_source_repo={repo} in {source} is a directory of this machine, which the AWS "
                              "build instance cannot reach: give a URL it can clone (git@github.com:org/app.git, "
                              "https://...), or bake it on the local cloud (--target local)")
    mounted = _team_repo(repo, path, revision, source)
    return AppSource({"app_source_repo": f"file://{TEAM_REPO_MOUNT}", "app_source_deploy_key": "",
                       "app_source_known_hosts": []},
                      f"baking app_source_repo={repo} ({mounted}, mounted read-only into the build host)", mounted)
