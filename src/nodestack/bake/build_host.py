"""Local mode's build host: a systemd container from the base image, sshd published on
127.0.0.1 only, with a one-time key that is also imported into the emulator as the key
pair Packer names. Removed afterwards, also on failure or Ctrl-C."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from nodestack.bake.run_owner import RunOwner
from nodestack.file_lock import take_lock
from nodestack.local_cloud import base_image
from nodestack.paths import REPO_ROOT, free_port, podman_env, state_dir

BUILD_USER = "admin"  # what Debian's AMIs call their first user
APT_CACHE_MOUNT = "/var/cache/nodestack-apt"
APT_CACHE_CONF = "/etc/apt/apt.conf.d/00nodestack-build-cache"
# Read-only mounts of the build host: the sample app's git remote (scripts/git-fixture.sh: its
# bare repository app.git), the Node.js mirror, and the team's repository when app_source_repo
# names a directory on this machine (a sibling: a mount point cannot be made inside a read-only mount).
SAMPLE_REMOTE_MOUNT = "/srv/app-remote"
FIXTURES = REPO_ROOT / ".state"  # where scripts/test-fixtures.sh makes the mirror and the sample app's remote
SAMPLE_REPO = f"{SAMPLE_REMOTE_MOUNT}/app.git"
NODE_MIRROR_MOUNT = "/srv/node-mirror"
TEAM_REPO_MOUNT = "/srv/team-remote"
# Every build container's label; the AMI's local image (podman commit) inherits it.
ROLE_LABEL, BUILD_HOST_ROLE = "io.nodestack.role", "build-host"


# What one local build takes in Podman's storage: the build container's layer and its commit as
# the AMI's image (about 1.2 GB, the base image's layers shared), with some room to spare.
BUILD_SPACE_BYTES = 2_500_000_000


class BuildHostError(RuntimeError):
    pass


def require_free_space(environments: int) -> None:
    """Refuse a local bake that would fill the disk halfway through (Podman then fails with
    `no space left on device` after Packer's whole build): checked before anything is launched."""
    try:
        store = Path(podman("info", "--format", "{{.Store.GraphRoot}}", timeout=60).stdout.strip())
        free = shutil.disk_usage(store).free
    except (OSError, subprocess.SubprocessError) as exc:  # no podman, a hung one, a store not there
        raise BuildHostError(f"cannot tell how much room Podman's storage has (`podman info`): {exc}") from exc
    needed = BUILD_SPACE_BYTES * environments
    if free < needed:
        raise BuildHostError(
            f"Podman's storage ({store}) has {free / 1e9:.1f} GB free; a local bake needs about "
            f"{BUILD_SPACE_BYTES / 1e9:.1f} GB per environment ({needed / 1e9:.1f} GB): free space first "
            "(`podman image prune`; `nodestack local down` removes the local cloud's AMI images)")


def podman(*args: str, check: bool = True, timeout: float = 120,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`podman ARGS` with the project's Podman settings; BuildHostError naming it on failure when check."""
    result = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                            timeout=timeout, input=stdin, check=False)
    if check and result.returncode != 0:
        raise BuildHostError(f"podman {' '.join(args[:3])} ... failed: {result.stderr.strip()[-500:]}")
    return result


def make_fixtures() -> Path:
    """FIXTURES made current: the Node.js mirror and the sample app's remote (scripts/test-fixtures.sh,
    which locks, and keeps what is current)."""
    subprocess.run([str(REPO_ROOT / "scripts/test-fixtures.sh")], check=True, capture_output=True, timeout=900)
    return FIXTURES


def sample_remote() -> Path:
    """The sample app's remote on this machine, which the build host mounts as SAMPLE_REPO."""
    return make_fixtures() / "git-fixture" / "app.git"


def volumes(fixtures: Path, apt_cache: Path, team_repo: Path | None = None) -> list[str]:
    """`podman run`'s -v arguments: the sample app's remote and the Node.js mirror from `fixtures`
    (scripts/test-fixtures.sh), the team's repository `team_repo` when there is one (all read-only),
    and the apt cache."""
    mounts = [f"{fixtures / 'git-fixture'}:{SAMPLE_REMOTE_MOUNT}:ro",
              f"{fixtures / 'node-mirror'}:{NODE_MIRROR_MOUNT}:ro"]
    if team_repo is not None:
        mounts.append(f"{team_repo}:{TEAM_REPO_MOUNT}:ro")
    mounts.append(f"{apt_cache}:{APT_CACHE_MOUNT}")
    return [arg for mount in mounts for arg in ("-v", mount)]


def safe_directories(team_repo: Path | None = None) -> list[str]:
    """The mounted repositories git in the build host must trust: they belong to another uid and
    git refuses those. The team's repository by its top (a working tree) and its .git (bare or not)."""
    return [SAMPLE_REPO, *([TEAM_REPO_MOUNT, f"{TEAM_REPO_MOUNT}/.git"] if team_repo is not None else [])]


@dataclass
class OneTimeKey:
    """`with OneTimeKey(name, ec2, workdir, tags) as key:` an ed25519 key made for one build: the
    private half a 0600 file (read by path, never passed as a string), the public half imported
    as the key pair `name`, tagged with tags (RunOwner.tag_list(): a killed run's key pair is
    then the next bake's to delete). Both gone afterwards, also on failure."""

    name: str
    ec2: object  # boto3 EC2 client
    workdir: Path
    tags: list[dict[str, str]] = field(default_factory=list)

    @property
    def private(self) -> Path:
        return self.workdir / "build_key"

    def __enter__(self) -> OneTimeKey:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(self.private)],
                       check=True, timeout=30)
        public_key = self.private.with_suffix(".pub").read_bytes()
        tagging = {"TagSpecifications": [{"ResourceType": "key-pair", "Tags": self.tags}]} if self.tags else {}
        self.ec2.import_key_pair(KeyName=self.name, PublicKeyMaterial=public_key,  # type: ignore[attr-defined]
                                 **tagging)
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
    """`with LocalBuildHost(name, env, ec2, team_repo, owner) as host:` -> host.port, host.key_file,
    host.key_name, host.known_hosts (its sshd's host keys, so SSH to it checks them). team_repo:
    the team's repository on this machine (EnvSettings.team_repo), mounted at TEAM_REPO_MOUNT.
    owner: the run, whose tags label the container and its key pair (for the next bake's sweep)."""

    name: str
    env: str
    ec2: object  # boto3 EC2 client of the local endpoint
    team_repo: Path | None = None
    owner: RunOwner | None = None
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
        fixtures = make_fixtures()
        workdir = self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=state_dir()))
        self._key = OneTimeKey(self.name, self.ec2, workdir, self.owner.tag_list() if self.owner else []).__enter__()
        self.key_file, self.key_name = self._key.private, self._key.name
        public_key = self.key_file.with_suffix(".pub").read_text()
        self.port = free_port()
        podman("run", "-d", "--name", self.name, "--systemd=always", "--label", f"{ROLE_LABEL}={BUILD_HOST_ROLE}",
               *(self.owner.label_args() if self.owner else []), "-p", f"127.0.0.1:{self.port}:22",
               *volumes(fixtures, self._apt_cache(), self.team_repo),
               base_image.IMAGE, "/sbin/init")
        trusted = "".join(f"\\tdirectory = {path}\\n" for path in safe_directories(self.team_repo))
        script = (
            f"useradd -m -s /bin/bash {BUILD_USER}"
            f" && install -d -m 0700 -o {BUILD_USER} -g {BUILD_USER} /home/{BUILD_USER}/.ssh"
            f" && install -m 0600 -o {BUILD_USER} -g {BUILD_USER} /dev/stdin /home/{BUILD_USER}/.ssh/authorized_keys"
            f" && echo '{BUILD_USER} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/90-build"
            # the mounted remotes belong to another uid; git refuses that unless trusted
            f" && printf '[safe]\\n{trusted}' >> /etc/gitconfig"
            # downloaded packages land in the mounted per-environment cache (finalize-image.sh drops this)
            f" && printf 'Dir::Cache::archives \"{APT_CACHE_MOUNT}/\";\\n' > {APT_CACHE_CONF}"
        )
        podman("exec", "-i", self.name, "sh", "-c", script, stdin=public_key, timeout=60)
        self._wait_for_sshd()
        host_keys = podman("exec", self.name, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout.splitlines()
        self.known_hosts = workdir / "known_hosts"
        self.known_hosts.write_text("".join(f"[127.0.0.1]:{self.port} {' '.join(k.split()[:2])}\n"
                                            for k in host_keys if k))

    def _apt_cache(self) -> Path:
        """One .deb cache per environment, shared by this machine's bakes of it. apt in two build
        hosts cannot share the cache (its lock fails at once, "held by process 0"), so a build host
        holds the cache's lock for its life: a second bake of the environment waits its turn."""
        path = REPO_ROOT / ".state" / "apt-cache" / self.env
        (path / "partial").mkdir(parents=True, exist_ok=True)

        def wait() -> None:
            print(f"[{self.env}] waiting for the {self.env} apt cache ({path}): another bake of {self.env} "
                  "on this machine uses it", flush=True)

        self._apt_lock = take_lock(path.parent / f"{self.env}.lock", wait)  # closed (released) by remove()
        return path

    def _wait_for_sshd(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while podman("exec", self.name, "systemctl", "is-active", "-q", "ssh", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise BuildHostError(f"sshd in build host {self.name} did not start within {timeout_s:.0f}s")
            time.sleep(0.5)

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)
        if getattr(self, "_apt_lock", None):
            self._apt_lock.close()
        if getattr(self, "_key", None):
            self._key.__exit__(None, None, None)
        if getattr(self, "_workdir", None):
            shutil.rmtree(self._workdir, ignore_errors=True)
