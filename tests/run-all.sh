#!/usr/bin/env bash
# Runs every test of pam_mapi on Debian 12, as root: the Rust unit and libpam
# integration tests, then each slower end-to-end suite that is present.
# Each suite installs what it needs. Ends with "suites: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh || { echo "setup failed"; exit 1; }

passed=0
failed=0
failed_names=()
suite() {
    local name=$1
    shift
    echo "=== suite $name: $*"
    local started=$SECONDS
    if "$@"; then
        echo "=== PASS $name ($((SECONDS - started)) s)"
        passed=$((passed + 1))
    else
        echo "=== FAIL $name ($((SECONDS - started)) s)"
        failed=$((failed + 1))
        failed_names+=("$name")
    fi
}

# The integration tests load target/debug/libpam_mapi.so through libpam.
suite cargo-build cargo build --workspace --all-targets --locked
suite cargo-test cargo test --workspace --locked --no-fail-fast

for script in tests/packages/run.sh tests/ansible/run.sh tests/e2e/run.sh tests/hardening/run.sh; do
    [ -f "$script" ] && suite "$(basename "$(dirname "$script")")" bash "$script"
done

echo
((failed)) && echo "failed suites: ${failed_names[*]}"
echo "suites: $passed passed, $failed failed"
((failed == 0))
