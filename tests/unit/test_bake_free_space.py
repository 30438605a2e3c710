"""A local bake refuses to start without room for its build and image (build_host.require_free_space)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nodestack.bake import build_host


def _storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, free: int) -> None:
    monkeypatch.setattr(build_host, "podman", lambda *args, **kwargs: subprocess.CompletedProcess(
        args, 0, f"{tmp_path}\n", ""))
    usage = shutil.disk_usage(tmp_path)

    def disk_usage(path: Any) -> Any:
        assert Path(path) == tmp_path  # Podman's own storage, not the current directory
        return usage._replace(free=free)
    monkeypatch.setattr(build_host.shutil, "disk_usage", disk_usage)


def test_too_little_room_for_two_environments_is_refused_naming_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    _storage(monkeypatch, tmp_path, 3_000_000_000)
    build_host.require_free_space(1)
    with pytest.raises(build_host.BuildHostError) as err:
        build_host.require_free_space(2)
    message = str(err.value)
    assert str(tmp_path) in message and "3.0 GB free" in message and "5.0 GB" in message
    assert "nodestack local down" in message and "podman image prune" in message
