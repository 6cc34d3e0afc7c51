# Helpers shared by the package checks; sourced by run.sh.

passed=0
failed=0

# check NAME COMMAND [ARG...]: runs COMMAND with its output in a log file and
# prints one PASS or FAIL line. On failure it prints the end of the log.
# Returns the status of COMMAND, so callers can skip checks that depend on it.
check() {
    local name=$1
    shift
    local log
    log="$log_dir/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
    local started=$SECONDS
    if "$@" > "$log" 2>&1; then
        echo "PASS: $name ($((SECONDS - started)) s)"
        passed=$((passed + 1))
        return 0
    fi
    echo "FAIL: $name ($((SECONDS - started)) s, log: $log)"
    tail -n 25 "$log" | sed 's/^/    /'
    failed=$((failed + 1))
    return 1
}

# skip NAME REASON: counts a check that could not run as failed.
skip() {
    echo "FAIL: $1 (not run: $2)"
    failed=$((failed + 1))
}

# expect_equal WHAT EXPECTED ACTUAL: fails with both values shown.
expect_equal() {
    if [ "$2" != "$3" ]; then
        echo "$1: expected:"
        printf '%s\n' "$2" | sed 's/^/    /'
        echo "$1: actual:"
        printf '%s\n' "$3" | sed 's/^/    /'
        return 1
    fi
}

# copy_source_tree DEST: copies the files that git tracks, plus new files that
# .gitignore does not exclude, so that uncommitted work is tested too. A vendor/
# left by debian/vendor-crates.sh is not copied.
copy_source_tree() {
    mkdir -p "$1"
    (
        cd "$repo" &&
            git ls-files -z --cached --others --exclude-standard -- . ':(exclude)vendor' |
            xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
                tar -cf - --null -T -
    ) | tar -xf - -C "$1"
}

# package_version: the version of the pam_mapi crate, from Cargo.toml.
package_version() {
    sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1
}
