#!/usr/bin/env bash
# Everything the Molecule scenarios mount, made locally and cached under .state/:
# the Node.js mirror (with a tampered release), the app's git remote with its keys, and
# the real-app fixtures (scripts/app-fixtures.sh).
# Serialized with a lock: scenarios run in parallel and call this from their dependency step.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .state
exec 9>.state/test-fixtures.lock
flock 9
scripts/node-mirror.sh 22.11.0 .state/node-mirror --corrupt-as 22.11.1
scripts/git-fixture.sh .state/git-fixture
scripts/app-fixtures.sh .state/app-fixtures .state/node-mirror 22.11.0
