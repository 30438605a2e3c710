"""app_config on a host with no instance profile and no SSM: the reader fails closed with a
clear message; with the bake's empty configuration its unit leaves a root-only file."""

from __future__ import annotations

import os
from pathlib import Path

UNIT = "nodeapp-config.service"
EMPTY_CONFIG = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "packer/tests/empty-config.conf"


def test_reader_and_unit_belong_to_root(host) -> None:  # type: ignore[no-untyped-def]
    reader = host.file("/usr/local/bin/nodestack-app-config")
    assert (reader.user, reader.group, reader.mode) == ("root", "root", 0o755)
    unit = host.file(f"/etc/systemd/system/{UNIT}")
    assert unit.user == "root" and unit.mode == 0o644
    assert "--path /nodeapp/test/config/ --output /run/nodeapp-config/environment" in unit.content_string
    assert host.run("python3 -c 'import boto3'").rc == 0


def test_without_credentials_the_unit_fails_and_says_why(host) -> None:  # type: ignore[no-untyped-def]
    started = host.run(f"systemctl start {UNIT}")
    assert started.rc != 0
    journal = host.check_output(f"journalctl -u {UNIT} --no-pager -o cat")
    assert "cannot read /nodeapp/test/config/ from SSM after" in journal
    assert not host.file("/run/nodeapp-config/environment").exists


def test_the_bakes_empty_configuration_leaves_a_root_only_file(host) -> None:  # type: ignore[no-untyped-def]
    drop_in = f"/run/systemd/system/{UNIT}.d"
    host.run(f"mkdir -p {drop_in}")
    written = host.run(f"cat > {drop_in}/50-bake-check.conf <<'END'\n{EMPTY_CONFIG.read_text()}END\n"
                       "systemctl daemon-reload")
    assert written.rc == 0, written.stderr
    try:
        assert host.run(f"systemctl start {UNIT}").rc == 0
        directory, env_file = host.file("/run/nodeapp-config"), host.file("/run/nodeapp-config/environment")
        assert (directory.user, directory.mode) == ("root", 0o700)  # kept after the oneshot ends
        assert (env_file.user, env_file.mode, env_file.size) == ("root", 0o600, 0)
    finally:
        host.run(f"rm -rf {drop_in} && systemctl daemon-reload")
