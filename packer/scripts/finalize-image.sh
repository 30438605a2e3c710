#!/bin/bash
# Runs as root inside the build host as Packer's last step: remove what must not be
# in an image (keys, history, instance state), then check the image is complete.
# Any failure fails the bake before the AMI is created.
set -euo pipefail
build_user=${BUILD_USER:?BUILD_USER is not set}
service=${APP_SERVICE:?APP_SERVICE is not set: the app systemd unit}
fail() { echo "finalize-image: $*" >&2; exit 1; }

# Host keys are made per instance at boot: make sure something will make them.
if ! grep -rqs 'ssh-keygen -A' /etc/systemd/system/ssh.service.d/; then
  mkdir -p /etc/systemd/system/ssh.service.d
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    > /etc/systemd/system/ssh.service.d/10-nodestack-host-keys.conf
fi
rm -f /etc/ssh/ssh_host_*
build_home=$(getent passwd "$build_user" | cut -d: -f6)
# The build key only: team members' keys (users role) belong in the image.
rm -f /root/.ssh/authorized_keys "$build_home/.ssh/authorized_keys"
rm -f /root/.bash_history /home/*/.bash_history /root/.python_history /root/.lesshst
# Ansible's remote files, the local build's sudo grant, and the build's journal (every
# task Ansible ran is logged there): none of it belongs to an instance.
rm -rf /root/.ansible /home/*/.ansible "$build_home/.ansible"
rm -f /etc/sudoers.d/90-build
journalctl --rotate >/dev/null 2>&1 || true
rm -rf /var/log/journal/* /run/log/journal/*
if command -v cloud-init >/dev/null; then cloud-init clean --logs; fi
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance
truncate -s 0 /etc/machine-id  # systemd makes a new one on first boot
rm -f /etc/apt/apt.conf.d/00nodestack-build-*  # local builds' package cache settings
apt-get clean
rm -rf /tmp/* /var/tmp/*

# The checks: first what must not be in the image, then what must.
leftover=$(ls -d /etc/ssh/ssh_host_* /root/.ssh/authorized_keys "$build_home/.ssh/authorized_keys" \
  /root/.bash_history /home/*/.bash_history /root/.ansible /home/*/.ansible /etc/sudoers.d/90-build \
  2>/dev/null || true)
journal=$(find /var/log/journal /run/log/journal -type f 2>/dev/null || true)
# baked mode never fetches again: the app_source role removes the deploy key and the
# checkout's git ssh command at the end of the run; an image that still has them fails.
# (pull mode keeps both for its fetch unit, owned by the deploy account.)
mode=$(sed -n 's/^AUTO_START_MODE=//p' /etc/default/$service 2>/dev/null || true)
if [ "${mode:-baked}" = baked ]; then
  keys=$(find /srv /var/lib /home /root /opt -path '*/.ssh/deploy_key' 2>/dev/null || true)
  app_dir=$(sed -n 's/^WorkingDirectory=//p' /etc/systemd/system/$service.service 2>/dev/null || true)
  ssh_command=""
  if [ -n "$app_dir" ] && grep -qis '^[[:space:]]*sshcommand[[:space:]]*=' "$app_dir/.git/config"; then
    ssh_command="$app_dir/.git/config (core.sshCommand)"
  fi
  leftover=$(printf '%s\n' $leftover $keys "$ssh_command" | sed '/^$/d')
fi
[ -z "$leftover" ] || fail "left in the image: $(echo $leftover)"
[ -z "$journal" ] || fail "the build's journal is still there: $(echo $journal)"
[ ! -e /var/lib/cloud/instance ] || fail "cloud-init instance state is still there"
for cmd in node git systemctl auto_start; do
  command -v "$cmd" >/dev/null || fail "required command $cmd is missing"
done
systemctl is-enabled -q "$service.service" || fail "$service.service is not enabled: it would not start on boot"
echo "finalize-image: clean and complete"
