#!/usr/bin/env bash
# Make the real-app fixtures the app_build tests deploy: small apps written here (no
# third-party code in the tree), each a git repository tagged v1 with the lockfile its
# package manager wrote, as a team's repository would have it:
#   DIR/express.git     Express, package-lock.json, "start": "node server.js", reads PORT, no /health,
#                       an .nvmrc naming its Node.js release
#   DIR/yarn.git        Yarn classic (packageManager yarn@1.22.22), yarn.lock
#   DIR/native.git      a native addon of its own, as a package tarball node-gyp builds on install,
#                       started through a shell command
#   DIR/typescript.git  a TypeScript build step (typescript is a dev dependency), "start": "node dist/server.js"
#   DIR/pnpm.git        pnpm (packageManager pnpm@9.15.0), pnpm-lock.yaml
#   DIR/berry.git       Yarn Berry (packageManager yarn@4.5.3) with Plug'n'Play: no node_modules
# Every app answers GET / with JSON: its name, NODE_ENV, what its dependencies computed.
# Lockfiles are written with the Node.js release of NODE_MIRROR (scripts/node-mirror.sh),
# its npm and its corepack. Rebuilt only when this script changes.
# Usage: scripts/app-fixtures.sh DIR NODE_MIRROR_DIR NODE_VERSION
set -euo pipefail
dir=$(realpath -m "$1") mirror=$(realpath "$2") version=$3
stamp=$(sha256sum "$0" | cut -c1-16)
[ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xzf "$mirror/v$version/node-v$version-linux-x64.tar.gz"
export PATH="$work/node-v$version-linux-x64/bin:$PATH"
export npm_config_cache="$work/npm-cache" npm_config_update_notifier=false npm_config_audit=false npm_config_fund=false
export COREPACK_HOME="$work/corepack" COREPACK_ENABLE_DOWNLOAD_PROMPT=0 COREPACK_INTEGRITY_KEYS=0 \
  COREPACK_NPM_REGISTRY=https://registry.npmjs.org YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_GLOBAL_CACHE=false
export GIT_AUTHOR_NAME=nodestack GIT_AUTHOR_EMAIL=nodestack@localhost GIT_COMMITTER_NAME=nodestack \
  GIT_COMMITTER_EMAIL=nodestack@localhost GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z \
  GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

server() {  # server NAME EXPRESSION: an HTTP server on PORT answering / with what EXPRESSION computes
  cat <<EOF
'use strict';
const http = require('node:http');
const server = http.createServer((req, res) => {
  if (req.url !== '/') { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ app: '$1', env: process.env.NODE_ENV, computed: $2 }));
});
server.listen(Number(process.env.PORT), () => console.log('$1 listening on', process.env.PORT));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
EOF
}

ms_app() {  # ms_app NAME PACKAGE_MANAGER MILLISECONDS: a corepack app whose / answers ms(MILLISECONDS)
  mkdir -p "$work/$1" && cd "$work/$1"
  cat > package.json <<EOF
{"name": "$1-fixture", "version": "1.0.0", "private": true, "packageManager": "$2",
 "scripts": {"start": "node server.js"}, "dependencies": {"ms": "2.1.3"}, "devDependencies": {"is-number": "7.0.0"}}
EOF
  server "$1" "require('ms')($3)" > server.js
}

app() {  # app NAME: commit the app made in $work/NAME, tag v1, publish DIR/NAME.git
  local name=$1
  (cd "$work/$name" && git init -q -b main . && git add -A && git commit -q -m "$name fixture" && git tag v1)
  rm -rf "$dir/$name.git"
  git clone -q --bare "$work/$name" "$dir/$name.git"
}

mkdir -p "$dir" "$work/express" "$work/native/addon" "$work/typescript/src"

# Express, as most teams write it: the app object, no health endpoint, PORT from the environment.
cd "$work/express"
cat > package.json <<'EOF'
{"name": "express-fixture", "version": "1.0.0", "private": true,
 "scripts": {"start": "node server.js"}, "dependencies": {"express": "4.21.2"}}
EOF
cat > server.js <<'EOF'
'use strict';
const express = require('express');
const app = express();
app.get('/', (req, res) => res.json({ app: 'express', env: process.env.NODE_ENV, computed: typeof express.Router }));
const server = app.listen(Number(process.env.PORT || 3000));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
EOF
echo v22.11.0 > .nvmrc  # as nvm writes it (`nvm current > .nvmrc`)
npm install --package-lock-only --silent
app express

ms_app yarn yarn@1.22.22 60000
corepack yarn install --silent --non-interactive && rm -rf node_modules
app yarn

# A C++ addon of the app's own, built by node-gyp from the installed release's headers.
cd "$work/native"
cat > addon/package.json <<'EOF'
{"name": "fixture-addon", "version": "1.0.0", "main": "build/Release/addon.node", "gypfile": true}
EOF
cat > addon/binding.gyp <<'EOF'
{"targets": [{"target_name": "addon", "sources": ["addon.cc"]}]}
EOF
cat > addon/addon.cc <<'EOF'
#include <node_api.h>
static napi_value Add(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value args[2]; double a, b; napi_value sum;
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  napi_get_value_double(env, args[0], &a); napi_get_value_double(env, args[1], &b);
  napi_create_double(env, a + b, &sum);
  return sum;
}
static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "add", NAPI_AUTO_LENGTH, Add, nullptr, &fn);
  napi_set_named_property(env, exports, "add", fn);
  return exports;
}
NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
EOF
# Packed as a registry package is (npm builds it on install: binding.gyp, no prebuilt binary).
(cd addon && npm pack --silent --pack-destination .. >/dev/null) && rm -rf addon
cat > package.json <<'EOF'
{"name": "native-fixture", "version": "1.0.0", "private": true,
 "scripts": {"start": "FIXTURE_STARTED_BY=sh node server.js"},
 "dependencies": {"fixture-addon": "file:fixture-addon-1.0.0.tgz"}}
EOF
server native "require('fixture-addon').add(40, 2) + ' ' + process.env.FIXTURE_STARTED_BY" > server.js
npm install --package-lock-only --silent
app native

cd "$work/typescript"
cat > package.json <<'EOF'
{"name": "typescript-fixture", "version": "1.0.0", "private": true,
 "scripts": {"build": "tsc", "start": "node dist/server.js"},
 "dependencies": {"ms": "2.1.3"}, "devDependencies": {"typescript": "5.6.3", "@types/node": "22.9.0"}}
EOF
cat > tsconfig.json <<'EOF'
{"compilerOptions": {"outDir": "dist", "rootDir": "src", "module": "commonjs", "target": "es2022", "strict": true}}
EOF
cat > src/server.ts <<'EOF'
import * as http from 'node:http';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ms: (value: number) => string = require('ms');
const typed: string = ms(1000);
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ app: 'typescript', env: process.env.NODE_ENV, computed: typed }));
});
server.listen(Number(process.env.PORT));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
EOF
echo dist/ > .gitignore
npm install --package-lock-only --silent
app typescript

ms_app pnpm pnpm@9.15.0 2000
corepack pnpm install --lockfile-only --silent
app pnpm

ms_app berry yarn@4.5.3 3000
# The lockfile only: a team's repository carries no install (.yarn/cache, .pnp.cjs) either.
corepack yarn install --mode=update-lockfile >/dev/null
rm -rf .yarn .pnp.cjs .pnp.loader.mjs node_modules
printf '.yarn/\n.pnp.*\n' > .gitignore
app berry

chmod -R a+rX "$dir"
echo "$stamp" > "$dir/.stamp"
