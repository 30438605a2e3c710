#!/bin/bash
# Packer's shell-local step, on the machine running Packer: the image checks
# (packer/tests, pytest-testinfra) against the build host over SSH, before the image is
# cleaned and taken. A failure fails the bake: no AMI is made.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
printf '%s\n' "${BUILD_SSH_KEY:?}" > "$work/key"
# The host key is checked: local mode gives the build container's keys; on AWS they come
# from the instance's console output (cloud-init prints them there).
if [ -n "${BUILD_KNOWN_HOSTS:-}" ]; then
  cp "$BUILD_KNOWN_HOSTS" "$work/known_hosts"
else
  "${PYTHON:-python3}" -m nodestack.bake.host_keys "${BUILD_INSTANCE_ID:?}" "${BUILD_HOST:?}" "${BUILD_PORT:?}" > "$work/known_hosts"
fi
printf 'Host *\n  StrictHostKeyChecking yes\n  UserKnownHostsFile %s\n  LogLevel ERROR\n' "$work/known_hosts" > "$work/ssh_config"
"${PYTHON:-python3}" -m pytest -q -p no:cacheprovider --no-header --sudo \
  --ssh-config="$work/ssh_config" --ssh-identity-file="$work/key" \
  --hosts="ssh://${BUILD_USER:?}@${BUILD_HOST:?}:${BUILD_PORT:?}" "$(dirname "$0")/../tests"
