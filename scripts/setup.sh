#!/usr/bin/env bash
# Idempotent set-up on Debian 12 / Ubuntu 22.04+: apt packages, venv, pinned Python deps.
# A second run installs nothing when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(podman runc packer debootstrap git openssh-client python3-venv uidmap slirp4netns haproxy openssl gpg gpgv)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The lock and the project metadata decide whether the venv is current.
stamp_want=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.stamp 2>/dev/null)" != "$stamp_want" ]; then
  echo "setup: creating the virtualenv from requirements.lock"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  echo "$stamp_want" > .venv/.stamp
fi

# Galaxy is unreachable: the collections must come with the pinned ansible package.
for collection in amazon.aws community.aws containers.podman; do
  path=".venv/lib/python3*/site-packages/ansible_collections/${collection/./\/}"
  # shellcheck disable=SC2086
  ls -d $path >/dev/null 2>&1 || {
    echo "setup: collection $collection is missing from the pinned ansible package; check requirements.lock" >&2
    exit 1
  }
done
echo "setup: ok"
