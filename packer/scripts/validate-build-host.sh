#!/bin/bash
# Packer's shell-local step, on the machine running Packer: the image checks
# (packer/tests, pytest-testinfra) against the build host over SSH, before the image is
# cleaned and taken. A failure fails the bake: no AMI is made.
# The key arrives as a path (BUILD_SSH_KEY_FILE): its contents never appear in a process's
# arguments or in Packer's log. The host key is checked against BUILD_KNOWN_HOSTS, which
# Packer's first step filled (local mode: the build container's keys; on AWS: from the
# instance's console output, where cloud-init prints them).
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
test -r "${BUILD_SSH_KEY_FILE:?}"
test -s "${BUILD_KNOWN_HOSTS:?}"
printf 'Host *\n  StrictHostKeyChecking yes\n  UserKnownHostsFile %s\n  LogLevel ERROR\n' "$BUILD_KNOWN_HOSTS" > "$work/ssh_config"
"${PYTHON:-python3}" -m pytest -q -p no:cacheprovider --no-header --sudo \
  --ssh-config="$work/ssh_config" --ssh-identity-file="$BUILD_SSH_KEY_FILE" \
  --hosts="ssh://${BUILD_USER:?}@${BUILD_HOST:?}:${BUILD_PORT:?}" "$(dirname "$0")/../tests"
