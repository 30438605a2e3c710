"""known_hosts for a build instance on AWS, from the SSH host keys cloud-init prints to its
console, so the image checks verify the host they talk to.

`python -m nodestack.bake.host_keys INSTANCE_ID HOST PORT` prints known_hosts lines, or
exits 1 naming the instance when no key appeared within the wait.
"""

from __future__ import annotations

import base64
import re
import sys
import time
from typing import Any

import boto3

_BLOCK = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.S)
_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) ([A-Za-z0-9+/=]+)", re.M)


def keys_from_console(output: str) -> list[str]:
    """`type base64` of each host key in cloud-init's block of the console output."""
    block = _BLOCK.search(output)
    return [f"{m.group(1)} {m.group(2)}" for m in _KEY.finditer(block.group(1))] if block else []


def known_hosts(ec2: Any, instance_id: str, host: str, port: int, wait_s: float = 300, poll_s: float = 10) -> str:
    """known_hosts lines for host:port; console output lags the boot by a few minutes."""
    deadline = time.monotonic() + wait_s
    while True:
        raw = ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output", "")
        text = raw if "BEGIN SSH" in raw else base64.b64decode(raw or b"").decode("utf-8", "replace")
        keys = keys_from_console(text)
        if keys:
            name = host if port == 22 else f"[{host}]:{port}"
            return "".join(f"{name} {key}\n" for key in keys)
        if time.monotonic() > deadline:
            raise SystemExit(f"no SSH host keys in the console output of {instance_id} after {wait_s:.0f}s: "
                             "the image checks will not talk to a host they cannot verify")
        time.sleep(poll_s)


def main(argv: list[str]) -> None:
    instance_id, host, port = argv
    sys.stdout.write(known_hosts(boto3.client("ec2"), instance_id, host, int(port)))


if __name__ == "__main__":
    main(sys.argv[1:])
