# Man page checks; sourced by run.sh.

man_pages=("$repo/docs/pam_mapi.8" "$repo/docs/pam_mapi.conf.5" "$repo/docs/pam_mapi-check.1")

# The setting names from `pub const OPTION_NAMES` in src/options.rs, one a line.
option_names_from_source() {
    sed -n '/^pub const OPTION_NAMES/,/^];/p' "$repo/src/options.rs" |
        sed -n 's/^ *"\([a-z_]*\)",*$/\1/p' | sort
}

# The names of the `.It Cm NAME` entries in section SECTION of man page FILE.
documented_names() {
    awk -v section="$2" '
        /^\.Sh / { in_section = ($0 == ".Sh " section) }
        in_section && /^\.It Cm [a-z_]+/ { print $3 }
    ' "$1" | sort
}

lint_man_pages() {
    local page output status=0
    for page in "${man_pages[@]}"; do
        output=$(mandoc -T lint -W warning "$page" 2>&1) || status=1
        [ -z "$output" ] || { echo "$output"; status=1; }
        output=$(groff -ww -z -mandoc "$page" 2>&1) || status=1
        [ -z "$output" ] || { echo "groff: $page: $output"; status=1; }
    done
    return $status
}

render_man_pages() {
    local page text
    for page in "${man_pages[@]}"; do
        text=$(MANWIDTH=80 man -l -P cat "$page" 2> /dev/null) || { echo "man -l failed on $page"; return 1; }
        grep -q '^NAME' <<< "$text" || { echo "man -l $page: no NAME section in the output"; return 1; }
    done
}

check_option_names_in_page() {
    local expected
    expected=$(option_names_from_source)
    [ -n "$expected" ] || { echo "no OPTION_NAMES list found in src/options.rs"; return 1; }
    expect_equal "options in pam_mapi(8)" "$expected" "$(documented_names "$repo/docs/pam_mapi.8" OPTIONS)"
}

check_config_keys_in_page() {
    local expected
    expected=$(option_names_from_source | grep -vx config)
    expect_equal "keys in pam_mapi.conf(5)" "$expected" "$(documented_names "$repo/docs/pam_mapi.conf.5" KEYS)"
}

check_config_keys_in_sample() {
    local expected actual
    expected=$(option_names_from_source | grep -vx config)
    actual=$(sed -n 's/^# \([a-z_]*\) = .*/\1/p' "$repo/docs/pam_mapi.conf" | sort -u)
    expect_equal "keys in docs/pam_mapi.conf" "$expected" "$actual"
}

check_default_socket_documented() {
    local default_socket
    default_socket=$(sed -n 's/^pub const DEFAULT_SOCKET: &str = "\(.*\)";$/\1/p' "$repo/src/options.rs")
    [ -n "$default_socket" ] || { echo "no DEFAULT_SOCKET found in src/options.rs"; return 1; }
    grep -q "^\.Li $default_socket \.$" "$repo/docs/pam_mapi.8" || { echo "pam_mapi(8) does not give the default $default_socket"; return 1; }
    grep -q "^# socket = $default_socket$" "$repo/docs/pam_mapi.conf" || { echo "docs/pam_mapi.conf does not give the default $default_socket"; return 1; }
}

check "man pages pass mandoc and groff lint" lint_man_pages
check "man pages render with man -l" render_man_pages
check "pam_mapi(8) documents every option" check_option_names_in_page
check "pam_mapi.conf(5) documents every key" check_config_keys_in_page
check "sample pam_mapi.conf lists every key" check_config_keys_in_sample
check "man pages give the default socket" check_default_socket_documented
