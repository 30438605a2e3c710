"""The base image is rebuilt exactly when its recipe changes."""

from __future__ import annotations

from dataclasses import replace

from nodestack.local_cloud.base_image import Recipe


def test_same_recipe_same_digest() -> None:
    assert Recipe().digest() == Recipe().digest()


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
