"""The local build host's mounts, without Podman: the sample app's remote always, the team's
repository (read-only, trusted by git) when app_source_repo is a directory of this machine."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import boto3
import pytest

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


def test_a_second_build_host_of_an_environment_waits_for_its_apt_cache(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # two bakes of dev at once (two state directories on one machine) shared the cache and one
    # build failed on apt's lock; now the second waits until the first build host is removed
    monkeypatch.setattr(build_host, "REPO_ROOT", tmp_path)
    first, second = (build_host.LocalBuildHost(f"b{n}", "dev", object()) for n in (1, 2))
    assert first._apt_cache() == tmp_path / ".state" / "apt-cache" / "dev"
    waiter = threading.Thread(target=second._apt_cache)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the second build host did not wait for the cache"
    monkeypatch.setattr(build_host, "podman", lambda *args, **kwargs: None)
    first.remove()
    waiter.join(5)
    assert not waiter.is_alive()
    with (tmp_path / ".state" / "apt-cache" / "dev.lock").open() as handle:  # held by the second now
        with pytest.raises(BlockingIOError):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    second.remove()


@pytest.mark.usefixtures("moto_in_process")
def test_the_one_time_key_pair_carries_the_runs_tags_and_is_gone_afterwards(tmp_path: Path) -> None:
    # a killed run's key pair is the next bake's to delete only with its run's tags (leftovers.py)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    tags = [{"Key": "BakeRun", "Value": "nodestack-bake-dev-1"}, {"Key": "Environment", "Value": "dev"}]
    with build_host.OneTimeKey("nodestack-bake-dev-1", ec2, tmp_path, tags) as key:
        [pair] = ec2.describe_key_pairs(KeyNames=[key.name])["KeyPairs"]
        assert pair["Tags"] == tags and key.private.stat().st_mode & 0o077 == 0
    assert ec2.describe_key_pairs()["KeyPairs"] == [] and not key.private.exists()
