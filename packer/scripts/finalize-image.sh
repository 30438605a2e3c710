#!/bin/bash
# Runs as root inside the build host as Packer's last step: remove what must not be
# in an image (keys, history, instance state), then check the image is complete.
# Any failure fails the bake before the AMI is created.
set -euo pipefail
build_user=${BUILD_USER:?BUILD_USER is not set}
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
if command -v cloud-init >/dev/null; then cloud-init clean --logs; fi
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance
truncate -s 0 /etc/machine-id  # systemd makes a new one on first boot
rm -f /etc/apt/apt.conf.d/00nodestack-build-*  # local builds' package cache settings
apt-get clean
rm -rf /tmp/* /var/tmp/*

# The checks.
for cmd in node git systemctl auto_start; do
  command -v "$cmd" >/dev/null || fail "required command $cmd is missing"
done
systemctl is-enabled -q nodeapp.service || fail "nodeapp.service is not enabled: it would not start on boot"
leftover=$(ls /etc/ssh/ssh_host_* /root/.ssh/authorized_keys "$build_home/.ssh/authorized_keys" \
  /root/.bash_history /home/*/.bash_history 2>/dev/null || true)
[ -z "$leftover" ] || fail "left in the image: $leftover"
[ ! -e /var/lib/cloud/instance ] || fail "cloud-init instance state is still there"
echo "finalize-image: clean and complete"
