"""The local build host's mounts, without Podman: the sample app's remote always, the team's
repository (read-only, trusted by git) when app_source_repo is a directory of this machine."""

from __future__ import annotations

from pathlib import Path

from nodestack.bake import build_host

FIXTURES, APT_CACHE = Path("/repo/.state"), Path("/repo/.state/apt-cache/dev")


def test_the_sample_remote_and_mirror_are_mounted_read_only() -> None:
    assert build_host.volumes(FIXTURES, APT_CACHE) == [
        "-v", "/repo/.state/git-fixture:/srv/app-remote:ro",
        "-v", "/repo/.state/node-mirror:/srv/node-mirror:ro",
        "-v", "/repo/.state/apt-cache/dev:/var/cache/nodestack-apt"]
    assert build_host.safe_directories() == ["/srv/app-remote/app.git"]


def test_the_team_repository_is_mounted_read_only_beside_the_sample() -> None:
    arguments = build_host.volumes(FIXTURES, APT_CACHE, Path("/home/me/app"))
    assert arguments[arguments.index("/home/me/app:/srv/team-remote:ro") - 1] == "-v"
    assert "/repo/.state/git-fixture:/srv/app-remote:ro" in arguments
    assert build_host.safe_directories(Path("/home/me/app")) == [
        "/srv/app-remote/app.git", "/srv/team-remote", "/srv/team-remote/.git"]
