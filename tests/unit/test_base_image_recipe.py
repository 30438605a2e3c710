"""The base image is rebuilt exactly when its recipe changes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

from nodestack.local_cloud.base_image import Recipe

_PRINT_DIGEST = "from nodestack.local_cloud.base_image import Recipe; print(Recipe().digest())"


def test_the_digest_is_the_same_in_every_process() -> None:
    """The cached image is reused across runs only if a new process computes the same digest."""
    digests = {
        subprocess.run(
            [sys.executable, "-c", _PRINT_DIGEST],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("0", "1", "12345")
    }
    assert digests == {Recipe().digest()}


def test_the_digest_ignores_the_order_files_are_listed_in() -> None:
    base = Recipe()
    reordered = replace(base, files=dict(reversed(list(base.files.items()))))
    assert list(reordered.files) != list(base.files)
    assert reordered.digest() == base.digest()


def test_any_recipe_change_changes_the_digest() -> None:
    base = Recipe()
    changed = [
        replace(base, suite="trixie"),
        replace(base, packages=(*base.packages, "curl")),
        replace(base, files={**base.files, "/etc/motd": "hi\n"}),
        replace(base, cleanup=()),
    ]
    assert len({r.digest() for r in changed} | {base.digest()}) == len(changed) + 1


def test_recipe_never_bakes_host_keys_into_the_image() -> None:
    assert "/etc/ssh/ssh_host_*" in Recipe().cleanup
    assert "ssh-keygen -A" in Recipe().files["/etc/systemd/system/ssh.service.d/hostkeys.conf"]
