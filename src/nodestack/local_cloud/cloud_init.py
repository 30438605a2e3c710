"""cloud-init as the local cloud's instances run it: the base image's configuration (the
local stand-in for what Debian's cloud AMIs ship) and the NoCloud seed of one instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SEED_MOUNT = "/var/lib/cloud/seed/nocloud"

# Instances are containers: no disks to grow, no kernel or bootloader, no locales, and
# Podman owns the hostname and /etc/hosts. The modules left are the ones that act on
# user data (scripts, #cloud-config write_files/runcmd/packages) and the key pair.
CONTAINER_CONFIG = """\
# nodestack local cloud: the modules a container can run (see docs/local-cloud.md)
datasource_list: [NoCloud]
preserve_hostname: true
manage_etc_hosts: false
ssh_deletekeys: false
ssh_genkeytypes: []
system_info:
  default_user:
    name: admin
    lock_passwd: true
    gecos: Debian
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
cloud_init_modules: [seed_random, bootcmd, write_files, users_groups, ssh]
cloud_config_modules: [runcmd]
cloud_final_modules: [package_update_upgrade_install, scripts_vendor, scripts_per_once,
  scripts_per_boot, scripts_per_instance, scripts_user, final_message]
"""

# Without a seed (Molecule hosts, the bake's build host) cloud-init stays off entirely.
DS_IDENTIFY = "policy: search,found=all,maybe=none,notfound=disabled\n"

IMAGE_FILES = {
    "/etc/cloud/cloud.cfg.d/90-nodestack-container.cfg": CONTAINER_CONFIG,
    "/etc/cloud/ds-identify.cfg": DS_IDENTIFY,
}


@dataclass(frozen=True)
class InstanceMetadata:
    instance_id: str
    hostname: str
    availability_zone: str
    region: str
    public_keys: tuple[str, ...] = ()


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_seed(directory: Path, meta: InstanceMetadata, user_data: bytes) -> None:
    """Write a NoCloud seed (meta-data, user-data, vendor-data); mode 0700, user data may be private."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    lines = [
        f"instance-id: {_yaml_str(meta.instance_id)}",
        f"local-hostname: {_yaml_str(meta.hostname)}",
        f"availability-zone: {_yaml_str(meta.availability_zone)}",
        f"placement: {{availability-zone: {_yaml_str(meta.availability_zone)}, region: {_yaml_str(meta.region)}}}",
    ]
    if meta.public_keys:
        lines.append("public-keys:")
        lines += [f"  - {_yaml_str(key)}" for key in meta.public_keys]
    files = {"meta-data": "\n".join(lines) + "\n", "vendor-data": ""}
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    (directory / "user-data").write_bytes(user_data)
    for name in (*files, "user-data"):
        (directory / name).chmod(0o600)
