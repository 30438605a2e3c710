"""Checks every image passes before Packer takes it (packer/scripts/validate-build-host.sh).

The same checks as molecule/app_server, against the build host over SSH with sudo,
NODESTACK_EXPECT_NODE and NODESTACK_EXPECT_REVISION set from the template's variables.
finalize-image.sh then checks that no keys or history are left.
"""

from __future__ import annotations

import json
import os

NODE = os.environ["NODESTACK_EXPECT_NODE"]
REVISION = os.environ["NODESTACK_EXPECT_REVISION"]
HEALTH = ("python3 -c 'import urllib.request; "
          "print(urllib.request.urlopen(\"http://127.0.0.1:3000/health\", timeout=5).read().decode())'")


def test_pinned_node(host) -> None:  # type: ignore[no-untyped-def]
    assert host.check_output("node --version") == f"v{NODE}"


def test_unit_enabled_for_boot(host) -> None:  # type: ignore[no-untyped-def]
    assert host.service("nodeapp").is_enabled


def test_healthy_after_a_restart_of_the_unit(host) -> None:  # type: ignore[no-untyped-def]
    restart = host.run("systemctl restart nodeapp")  # active only once /health answers 200
    assert restart.rc == 0, host.run("journalctl -u nodeapp --no-pager -n 30 -o cat").stdout
    health = json.loads(host.check_output(HEALTH))
    expected = host.check_output("runuser -u nodeapp -- git -C /srv/nodeapp/app rev-parse %s^{commit}", REVISION)
    assert health["status"] == "ok" and health["version"] == expected
