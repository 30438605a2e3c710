"""`nodestack molecule` finds every scenario and names an unknown one."""

from __future__ import annotations

from nodestack import molecule_runner
from tests.conftest import cli


def test_every_scenario_directory_is_found() -> None:
    assert molecule_runner.scenarios() == ["app_build", "app_config", "app_server", "app_source", "auto_start", "base",
                                           "nodejs", "users"]


def test_unknown_scenario_is_named_before_anything_runs() -> None:
    result = cli("molecule", "nope")
    assert result.returncode == 2 and "unknown Molecule scenario(s) nope" in result.stderr
