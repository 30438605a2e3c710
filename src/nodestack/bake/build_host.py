"""Local mode's build host: a systemd container from the base image, sshd published on
127.0.0.1 only, with a one-time key that is also imported into the emulator as the key
pair Packer names. Removed afterwards, also on failure or Ctrl-C."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from nodestack.paths import free_port
from nodestack.local_cloud import base_image
from nodestack.paths import REPO_ROOT, podman_env, state_dir

BUILD_USER = "admin"  # what Debian's AMIs call their first user
APT_CACHE_MOUNT = "/var/cache/nodestack-apt"
APT_CACHE_CONF = "/etc/apt/apt.conf.d/00nodestack-build-cache"


class BuildHostError(RuntimeError):
    pass


def podman(*args: str, check: bool = True, timeout: float = 120,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`podman ARGS` with the project's Podman settings; BuildHostError naming it on failure when check."""
    result = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                            timeout=timeout, input=stdin, check=False)
    if check and result.returncode != 0:
        raise BuildHostError(f"podman {' '.join(args[:3])} ... failed: {result.stderr.strip()[-500:]}")
    return result


@dataclass
class OneTimeKey:
    """`with OneTimeKey(name, ec2, workdir) as key:` an ed25519 key made for one build: the private
    half a 0600 file (read by path, never passed as a string), the public half imported as the
    key pair `name`. Both gone afterwards, also on failure."""

    name: str
    ec2: object  # boto3 EC2 client
    workdir: Path

    @property
    def private(self) -> Path:
        return self.workdir / "build_key"

    def __enter__(self) -> OneTimeKey:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(self.private)],
                       check=True, timeout=30)
        public_key = self.private.with_suffix(".pub").read_bytes()
        self.ec2.import_key_pair(KeyName=self.name, PublicKeyMaterial=public_key)  # type: ignore[attr-defined]
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.private.unlink(missing_ok=True)
        self.private.with_suffix(".pub").unlink(missing_ok=True)
        try:
            self.ec2.delete_key_pair(KeyName=self.name)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


@dataclass
class LocalBuildHost:
    """`with LocalBuildHost(name, env, ec2) as host:` -> host.port, host.key_file, host.key_name,
    host.known_hosts (its sshd's host keys, so SSH to it checks them)."""

    name: str
    env: str
    ec2: object  # boto3 EC2 client of the local endpoint
    port: int = 0
    key_file: Path | None = None
    key_name: str = ""
    known_hosts: Path | None = None

    def __enter__(self) -> LocalBuildHost:
        try:
            self._start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.remove()

    def _start(self) -> None:
        fixtures = REPO_ROOT / ".state"  # where scripts/test-fixtures.sh makes the mirror and remote
        subprocess.run([str(REPO_ROOT / "scripts/test-fixtures.sh")], check=True, capture_output=True, timeout=900)
        workdir = self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=state_dir()))
        self._key = OneTimeKey(self.name, self.ec2, workdir).__enter__()
        self.key_file, self.key_name = self._key.private, self._key.name
        public_key = self.key_file.with_suffix(".pub").read_text()
        self.port = free_port()
        podman("run", "-d", "--name", self.name, "--systemd=always", "--label", "io.nodestack.role=build-host",
               "-p", f"127.0.0.1:{self.port}:22",
               "-v", f"{fixtures / 'git-fixture'}:/srv/app-remote:ro",
               "-v", f"{fixtures / 'node-mirror'}:/srv/node-mirror:ro",
               "-v", f"{self._apt_cache()}:{APT_CACHE_MOUNT}",
               base_image.IMAGE, "/sbin/init")
        script = (
            f"useradd -m -s /bin/bash {BUILD_USER}"
            f" && install -d -m 0700 -o {BUILD_USER} -g {BUILD_USER} /home/{BUILD_USER}/.ssh"
            f" && install -m 0600 -o {BUILD_USER} -g {BUILD_USER} /dev/stdin /home/{BUILD_USER}/.ssh/authorized_keys"
            f" && echo '{BUILD_USER} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/90-build"
            # the mounted remote belongs to another uid; git refuses that unless trusted
            " && printf '[safe]\\n\\tdirectory = /srv/app-remote/app.git\\n' >> /etc/gitconfig"
            # downloaded packages land in the mounted per-environment cache (finalize-image.sh drops this)
            f" && printf 'Dir::Cache::archives \"{APT_CACHE_MOUNT}/\";\\n' > {APT_CACHE_CONF}"
        )
        podman("exec", "-i", self.name, "sh", "-c", script, stdin=public_key, timeout=60)
        self._wait_for_sshd()
        host_keys = podman("exec", self.name, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout.splitlines()
        self.known_hosts = workdir / "known_hosts"
        self.known_hosts.write_text("".join(f"[127.0.0.1]:{self.port} {' '.join(k.split()[:2])}\n" for k in host_keys if k))

    def _apt_cache(self) -> Path:
        """One .deb cache per environment (parallel bakes would contend for apt's lock)."""
        path = REPO_ROOT / ".state" / "apt-cache" / self.env
        (path / "partial").mkdir(parents=True, exist_ok=True)
        return path

    def _wait_for_sshd(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while podman("exec", self.name, "systemctl", "is-active", "-q", "ssh", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise BuildHostError(f"sshd in build host {self.name} did not start within {timeout_s:.0f}s")
            time.sleep(0.5)

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)
        if getattr(self, "_key", None):
            self._key.__exit__(None, None, None)
        if getattr(self, "_workdir", None):
            shutil.rmtree(self._workdir, ignore_errors=True)
