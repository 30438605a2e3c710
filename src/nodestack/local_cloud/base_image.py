"""Build the local Debian 12 systemd base image (debootstrap + podman import), cached by recipe."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field

from nodestack.local_cloud import cloud_init
from nodestack.paths import podman_env, state_dir

IMAGE = "localhost/nodestack-base:bookworm"
LABEL = "io.nodestack.recipe"


@dataclass(frozen=True)
class Recipe:
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    # What Ansible, Molecule and the bake's SSH need, and cloud-init as Debian's cloud
    # AMIs ship it (it runs user data on the local cloud's instances); roles install the rest.
    packages: tuple[str, ...] = (
        "python3", "python3-apt", "sudo", "systemd", "systemd-sysv", "dbus",
        "openssh-server", "iproute2", "ca-certificates", "procps",
        "python3-cffi-backend", "cloud-init",  # debootstrap does not resolve the virtual
        # python3-cffi-backend-api-max that cloud-init needs through python3-cryptography
    )
    # Host keys are made per container at boot, never shared through the image.
    files: dict[str, str] = field(default_factory=lambda: {
        "/etc/systemd/system/ssh.service.d/hostkeys.conf":
            "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n",
        **cloud_init.IMAGE_FILES,
    })
    cleanup: tuple[str, ...] = (
        "/etc/ssh/ssh_host_*", "/var/cache/apt/archives/*.deb",
    )

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _podman(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=podman_env(), text=True, capture_output=True,
                          check=check, **kw)  # type: ignore[call-overload]


def cached_digest(image: str = IMAGE) -> str | None:
    """The recipe digest the existing image was built from, or None if there is none."""
    result = _podman("image", "inspect", "--format", "{{index .Labels \"%s\"}}" % LABEL, image, check=False)
    return result.stdout.strip() or None if result.returncode == 0 else None


def build(recipe: Recipe | None = None, image: str = IMAGE, force: bool = False) -> bool:
    """Build the image unless one from the same recipe exists; returns True if it built."""
    recipe = recipe or Recipe()
    digest = recipe.digest()
    if not force and cached_digest(image) == digest:
        return False
    for tool in ("debootstrap", "podman"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: run `make setup` (scripts/setup.sh) first")
    scratch = tempfile.mkdtemp(prefix="base-image-", dir=state_dir())
    try:
        root = f"{scratch}/root"
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(recipe.packages)}",
             recipe.suite, root, recipe.mirror],
            check=True, capture_output=True, text=True,
        )
        for path, content in recipe.files.items():
            target = f"{root}{path}"
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(content)
        for pattern in recipe.cleanup:
            for leftover in glob.glob(f"{root}{pattern}"):
                shutil.rmtree(leftover) if os.path.isdir(leftover) else os.unlink(leftover)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        _podman("import", "--change", 'CMD ["/sbin/init"]', "--change", f"LABEL {LABEL}={digest}",
                "-", image, stdin=tar.stdout)
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap tree failed")
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"base image build failed: {' '.join(exc.cmd)}\n{exc.stderr or ''}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True
