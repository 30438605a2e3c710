#!/usr/bin/env bash
# Every check and test: yamllint, ansible-lint (production), syntax-check of every
# playbook, packer fmt, ruff and mypy (pyproject.toml), pytest (unit + integration on
# the local cloud), Molecule scenarios.
# Ends with one line "summary: N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/config/containers.conf}"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
mkdir -p .state
passed=0 failed=0 failures=()

step() {  # step NAME COMMAND...: one check, counted once
  local name=$1; shift
  echo "=== $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "--- $name: ok ($((SECONDS - start))s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "--- $name: FAILED ($((SECONDS - start))s)"
  fi
}

syntax_check_all() {
  local rc=0 playbook
  for playbook in site.yml playbooks/*.yml; do
    ansible-playbook --syntax-check "$playbook" >/dev/null || { echo "syntax error: $playbook"; rc=1; }
  done
  return $rc
}

step yamllint yamllint --strict .
step ansible-lint ansible-lint --profile production
step syntax-check syntax_check_all
step "packer fmt" packer fmt -check -diff packer/
step ruff ruff check --no-cache --output-format concise
step mypy mypy --no-incremental --python-executable "$PWD/.venv/bin/python"
[ "${1:-}" = "--lint-only" ] && { echo "summary: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

# Molecule and the image tests boot containers from the local base image (cached by recipe).
step "base image" nodestack image build

# pytest's own counts join the summary; exit 5 (no test collected) is a failure. Two
# workers, a module each at a time (tests/conftest.py orders them): most of a module's time
# is spent waiting on Ansible, Packer and containers, so two share the 2 cores well.
pytest -p no:cacheprovider -n "${NODESTACK_PYTEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder \
  --junitxml=.state/pytest.xml tests
rc=$?
read -r py_pass py_fail < <(python3 - <<'PY'
import xml.etree.ElementTree as ET
try:
    suite = ET.parse(".state/pytest.xml").getroot().find("testsuite")
    total, bad = int(suite.get("tests")), int(suite.get("failures")) + int(suite.get("errors"))
    print(total - bad - int(suite.get("skipped")), bad)
except (OSError, ET.ParseError, AttributeError):
    print(0, 0)
PY
)
passed=$((passed + py_pass)); failed=$((failed + py_fail))
if [ "$rc" -ne 0 ] && [ "$py_fail" -eq 0 ]; then failed=$((failed + 1)); failures+=("pytest exit $rc"); fi
[ "$py_pass" -gt 0 ] || { failed=$((failed + 1)); failures+=("pytest ran no test"); }

# Molecule scenarios run a few at a time (NODESTACK_MOLECULE_JOBS); each counts once.
nodestack molecule | tee .state/molecule-run.txt
read -r mol_pass mol_fail < <(sed -n 's/^molecule: \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' .state/molecule-run.txt)
passed=$((passed + ${mol_pass:-0})); failed=$((failed + ${mol_fail:-0}))
[ "${mol_pass:-0}" -gt 0 ] || { failed=$((failed + 1)); failures+=("no Molecule scenario passed"); }
[ "${mol_fail:-1}" -eq 0 ] || failures+=("molecule: ${mol_fail:-?} scenario(s); logs in .state/molecule/")

[ "${#failures[@]}" -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
