#!/usr/bin/env bash
# Make the tests' git remote for the sample app, never the internet:
#   DIR/app.git         bare repo: v1.0.0 (app/ as in this checkout), v1.1.0, broken
#   DIR/revisions.json  tag -> commit
#   DIR/deploy_key[.pub], DIR/host_key[.pub]  one-off ed25519 keys (deploy key, remote's host key)
# Containers mount DIR and serve app.git over their own sshd on loopback.
# Rebuilt only when app/ changes; keys are made once.
set -euo pipefail
dir=$(realpath -m "$1")
repo_root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir"
for key in deploy_key host_key; do
  [ -s "$dir/$key" ] || ssh-keygen -q -t ed25519 -N '' -C "nodestack-test-$key" -f "$dir/$key"
done
chmod 0644 "$dir"/*.pub "$dir/deploy_key" "$dir/host_key"  # read through a mount by other users

stamp=$( (cd "$repo_root" && find app -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum scripts/git-fixture.sh) | sha256sum | cut -c1-16)
[ -s "$dir/revisions.json" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=nodestack GIT_AUTHOR_EMAIL=nodestack@localhost GIT_COMMITTER_NAME=nodestack \
  GIT_COMMITTER_EMAIL=nodestack@localhost GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z \
  GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git init -q -b main "$work/app"
cp -r "$repo_root/app/." "$work/app/"
cd "$work/app"
git add -A && git commit -q -m "nodeapp 1.0.0" && git tag v1.0.0
sed -i 's/"version": "1.0.0"/"version": "1.1.0"/' package.json
sed -i 's/Hello from nodeapp/Hello again from nodeapp/' server.js
git commit -q -am "nodeapp 1.1.0" && git tag v1.1.0
# A revision that never becomes healthy: for failure paths (auto_start timeout, bad bake).
sed -i "0,/^'use strict';/s//'use strict';\nconsole.error('nodeapp: broken on purpose (test fixture)');\nprocess.exit(1);/" server.js
git commit -q -am "nodeapp broken on purpose" && git tag broken
printf '{"v1.0.0": "%s", "v1.1.0": "%s", "broken": "%s"}\n' \
  "$(git rev-parse v1.0.0)" "$(git rev-parse v1.1.0)" "$(git rev-parse broken)" > "$work/revisions.json"
rm -rf "$dir/app.git"
git clone -q --bare "$work/app" "$dir/app.git"
chmod -R a+rX "$dir/app.git"
mv "$work/revisions.json" "$dir/revisions.json"
echo "$stamp" > "$dir/.stamp"
