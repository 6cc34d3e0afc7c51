#!/usr/bin/env bash
# The slow hardening checks of pam_mapi.so, run as root on Debian 12 after
# tests/setup.sh:
#   1. 10,000 pam_start/pam_authenticate/pam_end cycles in one process: open
#      files and threads must not grow, VmRSS by less than 1 MiB.
#   2. 50 cycles under valgrind memcheck: no definite leak, no invalid access.
#   3. Every libpam test with `debug` on every pam_mapi line, logged through a
#      private rsyslogd, then a scan of that log for every password the tests
#      sent.
#   4. With PAM_MAPI_FUZZ_SECONDS=N and cargo-fuzz installed, each fuzz target
#      for N seconds (docs/fuzzing.md).
# Ends with "hardening: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."

passed=0
failed=0
step() {
    local name=$1
    shift
    echo "--- $name"
    local started=$SECONDS
    if "$@"; then
        echo "--- PASS $name ($((SECONDS - started)) s)"
        passed=$((passed + 1))
    else
        echo "--- FAIL $name ($((SECONDS - started)) s)"
        failed=$((failed + 1))
    fi
}

install_missing() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "hardening: installing ${missing[*]}"
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# Prints the path of the pam_stress test binary.
stress_binary() {
    cargo test --locked --test pam_stress --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "pam_stress" and message.get("executable"):
        print(message["executable"])
'
}

cycles() {
    cargo test --locked --test pam_stress module_cycles_leak_no_resources -- --ignored --exact --nocapture
}

valgrind_cycles() {
    local binary
    binary=$(stress_binary)
    [ -x "$binary" ] || { echo "pam_stress test binary not found"; return 1; }
    # --keep-debuginfo keeps the module's symbols for the report after libpam's
    # dlclose. Only definite leaks count as errors: libpam and the test harness
    # keep some memory reachable until exit.
    PAM_MAPI_CYCLES=50 valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
        --keep-debuginfo=yes --num-callers=40 --error-exitcode=99 \
        "$binary" --ignored --exact module_cycles_for_valgrind --test-threads=1
}

# Runs every pam_mapi test with debug on, logging to a private rsyslogd that a
# mount namespace puts at /dev/log, then scans that log for the passwords.
debug_log_scan() {
    local dir rc
    dir=$(mktemp -d /tmp/pam_mapi-logscan.XXXXXX)
    cat >"$dir/rsyslog.conf" <<RSYSLOG_CONF
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$dir/log.sock")
template(name="withSeverity" type="string" string="%syslogseverity-text% %timegenerated% %HOSTNAME% %syslogtag%%msg%\n")
*.* action(type="omfile" file="$dir/auth.log" template="withSeverity")
RSYSLOG_CONF
    rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" &
    local rsyslogd_pid=$!
    for _ in $(seq 50); do [ -S "$dir/log.sock" ] && break; sleep 0.1; done
    if [ ! -S "$dir/log.sock" ]; then
        echo "the private rsyslogd did not create $dir/log.sock"
        kill "$rsyslogd_pid"
        return 1
    fi

    unshare -m bash -c '
        mount --bind "$1/log.sock" /dev/log || exit 1
        PAM_MAPI_TEST_DEBUG=1 PAM_MAPI_TEST_LOG="$1/auth.log" PAM_MAPI_TEST_PASSWORD_LIST="$1/passwords" \
            cargo test --locked -p pam_mapi --tests
    ' debug-suite "$dir"
    rc=$?
    sleep 0.5
    kill "$rsyslogd_pid"
    wait "$rsyslogd_pid" 2>/dev/null
    if ((rc != 0)); then
        echo "the test suites failed with debug on; log in $dir/auth.log"
        return 1
    fi
    echo "debug lines logged: $(grep -c '^debug ' "$dir/auth.log")"
    python3 tests/secrets/scan-log.py "$dir/auth.log" "$dir/passwords" || {
        echo "log kept in $dir"
        return 1
    }
    rm -rf "$dir"
}

fuzz() {
    local seconds=$1 target rc=0
    for target in soap_reply settings_args config_text server_url; do
        mkdir -p "fuzz/target/run-corpus/$target"
        cargo fuzz run --sanitizer none "$target" "fuzz/target/run-corpus/$target" "fuzz/corpus/$target" \
            -- -max_total_time="$seconds" -timeout=5 || rc=1
    done
    return $rc
}

install_missing valgrind python3 rsyslog util-linux
step build cargo build --workspace --all-targets --locked
step cycles cycles
step valgrind valgrind_cycles
step debug-log-scan debug_log_scan
if [ "${PAM_MAPI_FUZZ_SECONDS:-0}" -gt 0 ]; then
    if command -v cargo-fuzz >/dev/null; then
        step fuzz fuzz "$PAM_MAPI_FUZZ_SECONDS"
    else
        echo "hardening: PAM_MAPI_FUZZ_SECONDS is set but cargo-fuzz is missing; run: cargo install cargo-fuzz --locked"
        failed=$((failed + 1))
    fi
fi

echo "hardening: $passed passed, $failed failed"
((failed == 0))
