"""Build-host known_hosts from an instance's console output (the AWS path of the image checks)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nodestack.bake import host_keys

CONSOLE = """[   12.3] cloud-init[512]: Cloud-init v. 22.4 running 'modules:final'
-----BEGIN SSH HOST KEY FINGERPRINTS-----
256 SHA256:abc root@ip-10-0-0-5 (ED25519)
-----END SSH HOST KEY FINGERPRINTS-----
-----BEGIN SSH HOST KEY KEYS-----
ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= root@ip-10-0-0-5
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG root@ip-10-0-0-5
-----END SSH HOST KEY KEYS-----
"""


class Console:
    """What EC2 answers to GetConsoleOutput: nothing first, then the boot log (base64)."""

    def __init__(self, outputs: list[str]) -> None:
        self.outputs = outputs
        self.calls: list[dict[str, Any]] = []

    def get_console_output(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(kwargs)
        text = self.outputs.pop(0)
        return {"Output": base64.b64encode(text.encode()).decode()} if text else {}


def test_keys_come_from_cloud_inits_block_only() -> None:
    assert host_keys.keys_from_console(CONSOLE) == [
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY=", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG"]
    assert host_keys.keys_from_console("ssh-ed25519 AAAAC3Nz outside any block") == []


def test_known_hosts_waits_for_the_console_and_names_the_port() -> None:
    console = Console(["", CONSOLE])
    lines = host_keys.known_hosts(console, "i-0abc", "203.0.113.9", 2222, wait_s=5, poll_s=0)
    assert lines.splitlines() == ["[203.0.113.9]:2222 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY=",
                                  "[203.0.113.9]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG"]
    assert [c["InstanceId"] for c in console.calls] == ["i-0abc", "i-0abc"]


def test_no_keys_fails_naming_the_instance() -> None:
    with pytest.raises(SystemExit, match="no SSH host keys in the console output of i-0abc"):
        host_keys.known_hosts(Console(["boot log without keys"] * 3), "i-0abc", "203.0.113.9", 22, wait_s=0, poll_s=0)
