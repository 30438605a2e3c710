#!/bin/bash
# Packer's shell-local step, on the machine running Packer: the image checks
# (packer/tests, pytest-testinfra) against the build host over SSH, before the image is
# cleaned and taken. A failure fails the bake: no AMI is made.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
printf '%s\n' "${BUILD_SSH_KEY:?}" > "$work/key"
# The build host is ephemeral and its host key unknown (Packer does not check it either).
printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n' > "$work/ssh_config"
"${PYTHON:-python3}" -m pytest -q -p no:cacheprovider --no-header --sudo \
  --ssh-config="$work/ssh_config" --ssh-identity-file="$work/key" \
  --hosts="ssh://${BUILD_USER:?}@${BUILD_HOST:?}:${BUILD_PORT:?}" "$(dirname "$0")/../tests"
