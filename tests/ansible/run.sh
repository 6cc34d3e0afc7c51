#!/bin/bash
# End-to-end test of the Ansible role pam_mapi.
#
# For Postfix and then Sendmail, the test builds a Debian 12 root with
# mmdebstrap and boots it with systemd-nspawn on a private network. It applies
# the role through the community.docker.nsenter connection. Then it checks
# SMTP AUTH through saslauthd, PAM and pam_mapi against the stand-in Kopano
# server that runs inside the container. It also runs ansible-lint, runs the
# role's validate tasks on localhost for each case of validate_cases.yml, and
# renders the EL 9 configuration. In the Postfix container it also checks
# that the template task's validate step keeps a pam_mapi.conf that the
# module rejects off the host. Needs root on Debian 12. Prints one
# PASS/FAIL line per check and exits non-zero when a check failed.
#
# Environment:
#   PAM_MAPI_DEB          libpam-mapi .deb to install (default: built from
#                         this tree with "cargo deb")
#   KOPANO_STANDIN        kopano-standin binary (default: built with cargo)
#   PAM_MAPI_ANSIBLE_WORK cache directory (default: /tmp/pam_mapi-ansible); each
#                         run works in its own run.* directory below it, so
#                         runs may overlap
#   CARGO_TARGET_DIR      cargo's target directory (default: target/)

set -u -o pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
TEST_DIR=$REPO/tests/ansible
ROLE_DIR=$REPO/ansible
CACHE=${PAM_MAPI_ANSIBLE_WORK:-/tmp/pam_mapi-ansible}
WORK=""
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
DEBIAN_MIRROR=http://deb.debian.org/debian
STANDIN_SOCKET=/run/kopano-standin/server.sock
# Passwords that occur nowhere else, so that a search of the logs for them
# finds only leaks.
GOOD_PASSWORD=Kx7-good-Pw
BAD_PASSWORD=Qz4-wrong-Pw

passed=0
failed=0
nspawn_pid=""
leader=""

pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
log() { echo "--- $*"; }

# check NAME COMMAND...: PASS when COMMAND exits 0. Its output goes to the
# log file, which is printed on failure.
check() {
    local name=$1
    shift
    if "$@" > "$WORK/check.log" 2>&1; then
        pass "$name"
    else
        fail "$name"
        sed 's/^/    /' "$WORK/check.log" | tail -n 30
    fi
}

finish() {
    stop_container
    if [ -z "$WORK" ]; then
        :
    elif [ "$failed" -eq 0 ]; then
        rm -rf "$WORK"
    else
        # Keep the logs, but not the container roots of about 300 MB each.
        rm -rf "$WORK"/ct-*
        echo "logs: $WORK"
    fi
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

# with_cache_lock COMMAND...: runs COMMAND in a subshell that holds the lock
# of the cache directory, so that overlapping runs build the cache once.
with_cache_lock() {
    (
        flock 9 && "$@"
    ) 9> "$CACHE/lock"
}

# --- Tools ---------------------------------------------------------------------

install_tools() {
    local missing=()
    command -v mmdebstrap > /dev/null || missing+=(mmdebstrap)
    command -v systemd-nspawn > /dev/null || missing+=(systemd-container)
    command -v ansible-playbook > /dev/null || missing+=(ansible)
    command -v nc > /dev/null || missing+=(netcat-openbsd)
    python3 -c 'import venv, ensurepip' 2> /dev/null || missing+=(python3-venv)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -q > "$WORK/apt.log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                "${missing[@]}" >> "$WORK/apt.log" 2>&1 ||
            { cat "$WORK/apt.log"; return 1; }
    fi

    if [ ! -x "$CACHE/lint-venv/bin/ansible-lint" ]; then
        log "installing ansible-lint into $CACHE/lint-venv"
        rm -rf "$CACHE/lint-venv"
        python3 -m venv "$CACHE/lint-venv" &&
            "$CACHE/lint-venv/bin/pip" install -q 'ansible-lint==26.10.1' > "$WORK/pip.log" 2>&1 ||
            { cat "$WORK/pip.log"; return 1; }
    fi
}

# Builds the libpam-mapi package and the stand-in server from this tree,
# unless PAM_MAPI_DEB and KOPANO_STANDIN name them.
find_artifacts() {
    if [ -z "${PAM_MAPI_DEB:-}" ]; then
        log "building libpam-mapi with cargo deb"
        command -v cargo-deb > /dev/null || cargo install cargo-deb --locked -q || return 1
        rm -rf "$WORK/deb"
        (cd "$REPO" && cargo deb -q --package pam_mapi --output "$WORK/deb" -- --locked) || return 1
        PAM_MAPI_DEB=$(ls "$WORK"/deb/libpam-mapi_*_amd64.deb | head -n 1)
    fi

    if [ -z "${KOPANO_STANDIN:-}" ]; then
        log "building kopano-standin"
        (cd "$REPO" && cargo build -q --locked -p kopano-standin --bin kopano-standin) || return 1
        KOPANO_STANDIN=$TARGET/debug/kopano-standin
    fi

    log "package: $PAM_MAPI_DEB"
    log "stand-in server: $KOPANO_STANDIN"
    [ -f "$PAM_MAPI_DEB" ] && [ -x "$KOPANO_STANDIN" ]
}

# --- Container root and boot ---------------------------------------------------

# Packages of the container root: systemd to boot, python3-apt for Ansible's
# apt module, everything the role installs (the booted container has no
# mirror), and swaks with its TLS modules for the checks.
COMMON_PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,iproute2,procps,sasl2-bin,libsasl2-modules,swaks,libnet-ssleay-perl,libio-socket-ssl-perl,ca-certificates,openssl,ssl-cert,netbase
# shellcheck disable=SC2054 # mmdebstrap --include takes comma-separated lists.
declare -A MTA_PACKAGES=(
    [postfix]=postfix
    [sendmail]=sendmail-bin,sendmail-cf,m4,make
)

# Writes the root's host name before the packages configure: Sendmail stalls
# for 60 s and skips its AUTH setup when the host name does not resolve.
HOSTS_HOOK='printf "127.0.0.1 localhost\n127.0.1.1 mail.example.test mail\n" > "$1/etc/hosts"; echo mail > "$1/etc/hostname"'

# Sets ROOTFS_PACKAGES and ROOTFS_TAR, the cached root tarball of an MTA,
# whose name changes with the package list.
rootfs_path() {
    local mta=$1 key
    ROOTFS_PACKAGES=$COMMON_PACKAGES,${MTA_PACKAGES[$mta]}
    key=$(echo "$ROOTFS_PACKAGES $HOSTS_HOOK" | sha256sum | cut -c1-12)
    ROOTFS_TAR=$CACHE/rootfs-$mta-$key.tar
}

# Builds ROOTFS_TAR with mmdebstrap unless it exists.
build_rootfs() {
    local mta=$1
    # mmdebstrap picks the output format from the file name's extension.
    local partial=${ROOTFS_TAR%.tar}.partial.tar
    [ -s "$ROOTFS_TAR" ] && return 0

    log "building the $mta root with mmdebstrap"
    unshare --uts sh -c 'hostname mail.example.test && exec "$@"' sh \
        mmdebstrap --variant=apt --include="$ROOTFS_PACKAGES" \
        --essential-hook="$HOSTS_HOOK" \
        bookworm "$partial" "$DEBIAN_MIRROR" > "$WORK/mmdebstrap-$mta.log" 2>&1 ||
        { tail -n 30 "$WORK/mmdebstrap-$mta.log"; rm -rf "$partial"; return 1; }
    mv "$partial" "$ROOTFS_TAR"
}

# Unpacks the root and installs the stand-in server as a systemd unit.
prepare_root() {
    local root=$1
    rm -rf "$root"
    mkdir -p "$root"
    tar -C "$root" -xf "$ROOTFS_TAR" || return 1

    install -m 0755 "$KOPANO_STANDIN" "$root/usr/local/bin/kopano-standin"
    cat > "$root/etc/systemd/system/kopano-standin.service" <<UNIT
[Unit]
Description=Stand-in Kopano server for the pam_mapi role test

[Service]
ExecStart=/usr/local/bin/kopano-standin --listen 127.0.0.1:2360 --unix $STANDIN_SOCKET --user alice:$GOOD_PASSWORD
RuntimeDirectory=kopano-standin

[Install]
WantedBy=multi-user.target
UNIT
    ln -sf /etc/systemd/system/kopano-standin.service \
        "$root/etc/systemd/system/multi-user.target.wants/kopano-standin.service"
}

# Runs a command inside the booted container.
in_ct() {
    nsenter -t "$leader" -a "$@"
}

boot_container() {
    local root=$1 name=$2 state
    systemd-nspawn -D "$root" -M "$name" -b --register=no --keep-unit \
        --private-network --console=pipe > "$WORK/nspawn-$name.log" 2>&1 < /dev/null &
    nspawn_pid=$!

    for _ in $(seq 1 100); do
        leader=$(pgrep -P "$nspawn_pid" -x systemd | head -n 1)
        if [ -n "$leader" ]; then
            state=$(in_ct systemctl is-system-running 2> /dev/null)
            case $state in running | degraded) break ;; esac
        fi
        sleep 0.2
    done
    log "container $name: leader $leader, state ${state:-unknown}"

    for _ in $(seq 1 50); do
        in_ct test -S "$STANDIN_SOCKET" && return 0
        sleep 0.2
    done
    echo "kopano-standin did not create $STANDIN_SOCKET within 10 s; its journal follows" >&2
    in_ct journalctl -u kopano-standin --no-pager | tail -n 20
    return 1
}

stop_container() {
    if [ -n "$nspawn_pid" ]; then
        kill -TERM "$nspawn_pid" 2> /dev/null
        wait "$nspawn_pid" 2> /dev/null
        nspawn_pid=""
        leader=""
    fi
}

# --- Ansible -------------------------------------------------------------------

write_inventory() {
    cat > "$WORK/inventory.ini" <<INV
[containers]
ct ansible_connection=community.docker.nsenter ansible_nsenter_pid=$leader ansible_python_interpreter=/usr/bin/python3
INV
}

# playbook NAME PLAYBOOK ARGS...: runs ansible-playbook, keeps the output in
# $WORK/NAME.log and the PLAY RECAP counters in RECAP.
playbook() {
    local name=$1 rc
    shift
    ANSIBLE_ROLES_PATH=$ROLE_DIR/roles ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 \
        ANSIBLE_HOST_KEY_CHECKING=0 ANSIBLE_RETRY_FILES_ENABLED=0 \
        ansible-playbook -i "$WORK/inventory.ini" "$@" > "$WORK/$name.log" 2>&1
    rc=$?
    RECAP=$(grep -E '^ct +:' "$WORK/$name.log")
    return $rc
}

playbook_ok() {
    local name=$1
    shift
    if playbook "$name" "$@"; then
        pass "$name"
    else
        fail "$name"
        grep -E -B2 -A12 'fatal:|ERROR!|FAILED!' "$WORK/$name.log" | head -n 60
        return 1
    fi
}

# handlers_ran LOG HANDLER...: succeeds when the playbook output in LOG ran
# exactly the named handlers of the role.
handlers_ran() {
    local log=$1 ran expected
    shift
    ran=$(grep -o 'RUNNING HANDLER \[pam_mapi : [^]]*\]' "$log" | sed 's/.*pam_mapi : //; s/\]$//' | sort | paste -sd ,)
    expected=$(printf '%s\n' "$@" | sort | paste -sd ,)
    echo "handlers that ran: $ran; expected: $expected"
    [ "$ran" = "$expected" ]
}

expect_no_change() {
    local name=$1
    if echo "$RECAP" | grep -q 'changed=0 .*failed=0'; then
        pass "$name"
    else
        fail "$name: $RECAP"
        grep -E '^(changed|TASK)' "$WORK/$2.log" | grep -B1 '^changed' | head -n 20
    fi
}

# --- SMTP checks -----------------------------------------------------------------

# swaks_auth MECHANISM PASSWORD [swaks options]: tries AUTH against the MTA on
# the container's loopback. Prints swaks' output and returns its exit code.
swaks_auth() {
    local mechanism=$1 password=$2
    shift 2
    in_ct swaks --server 127.0.0.1:25 --auth "$mechanism" --auth-user alice \
        --auth-password "$password" --to postmaster@example.test --quit-after AUTH "$@"
}

# Succeeds when swaks got 235 and exited 0.
auth_accepted() {
    local output rc
    output=$(swaks_auth "$@" 2>&1)
    rc=$?
    echo "$output"
    echo "$output" | grep -qE '^<[~*]* +235 ' && [ "$rc" -eq 0 ]
}

# Succeeds when swaks got 535 and exited non-zero.
auth_rejected() {
    local output rc
    output=$(swaks_auth "$@" 2>&1)
    rc=$?
    echo "$output"
    echo "$output" | grep -qE '^<[~*]* +535 ' && [ "$rc" -ne 0 ]
}

# Succeeds when swaks got no 235, whatever the reply, and exited non-zero.
auth_not_accepted() {
    local output rc
    output=$(swaks_auth "$@" 2>&1)
    rc=$?
    echo "$output"
    ! echo "$output" | grep -qE '^<[~*]* +235 ' && [ "$rc" -ne 0 ]
}

testsaslauthd_ok() {
    in_ct testsaslauthd -u alice -p "$1" -s smtp -f "$2/mux"
}

testsaslauthd_fails() {
    ! in_ct testsaslauthd -u alice -p "$1" -s smtp -f "$2/mux"
}

# e2e.yml sets pam_mapi_debug, so pam_mapi logs each logon through journald.
journal_mentions_pam_mapi() {
    in_ct journalctl --no-pager -o cat | grep 'pam_mapi' | tail -n 5 | grep .
}

journal_has_no_password() {
    ! in_ct journalctl --no-pager -o short | grep -F -e "$GOOD_PASSWORD" -e "$BAD_PASSWORD"
}

# --- One MTA, end to end ---------------------------------------------------------

run_mta() {
    local mta=$1 stack=$2 socket_dir=$3
    local extra=(-e "pam_mapi_mta=$mta" -e "pam_mapi_pam_stack=$stack" -e "pam_mapi_package_file=$PAM_MAPI_DEB")

    log "$mta with the $stack PAM stack"
    rootfs_path "$mta"
    with_cache_lock build_rootfs "$mta" || { fail "$mta: build the container root"; return; }
    prepare_root "$WORK/ct-$mta" || { fail "$mta: unpack the container root"; return; }
    boot_container "$WORK/ct-$mta" "pam-mapi-$mta-$$" || { fail "$mta: boot the container"; stop_container; return; }
    write_inventory

    playbook_ok "$mta: check mode on a fresh host" "$TEST_DIR/e2e.yml" --check "${extra[@]}"
    check "$mta: check mode reports changes" sh -c "echo '$RECAP' | grep -qE 'changed=[1-9]'"
    check "$mta: check mode wrote no file" in_ct test ! -e /etc/security/pam_mapi.conf
    playbook_ok "$mta: first run" "$TEST_DIR/e2e.yml" "${extra[@]}" || { stop_container; return; }

    check "$mta: testsaslauthd right password" testsaslauthd_ok "$GOOD_PASSWORD" "$socket_dir"
    check "$mta: testsaslauthd wrong password" testsaslauthd_fails "$BAD_PASSWORD" "$socket_dir"
    check "$mta: AUTH PLAIN right password -> 235" auth_accepted PLAIN "$GOOD_PASSWORD" --tls
    check "$mta: AUTH LOGIN right password -> 235" auth_accepted LOGIN "$GOOD_PASSWORD" --tls
    check "$mta: AUTH PLAIN wrong password -> 535" auth_rejected PLAIN "$BAD_PASSWORD" --tls
    check "$mta: AUTH LOGIN wrong password -> 535" auth_rejected LOGIN "$BAD_PASSWORD" --tls
    check "$mta: AUTH without STARTTLS rejected" auth_not_accepted PLAIN "$GOOD_PASSWORD"

    playbook_ok "$mta: second run" "$TEST_DIR/e2e.yml" "${extra[@]}" &&
        expect_no_change "$mta: second run changed=0" "$mta: second run"
    playbook_ok "$mta: check mode after convergence" "$TEST_DIR/e2e.yml" --check --diff "${extra[@]}" &&
        expect_no_change "$mta: check mode changed=0" "$mta: check mode after convergence"

    # A changed variable must notify only the handlers of the files it touches.
    local change=(-e pam_mapi_saslauthd_threads=3) handlers=("Restart saslauthd")
    if [ "$mta" = postfix ]; then
        change+=(-e '{"pam_mapi_postfix_extra_settings": {"smtpd_sasl_authenticated_header": "yes"}}')
        handlers+=("Reload postfix")
    fi
    playbook_ok "$mta: run with changed settings" "$TEST_DIR/e2e.yml" "${extra[@]}" "${change[@]}" &&
        check "$mta: only the affected daemons restart" \
            handlers_ran "$WORK/$mta: run with changed settings.log" "${handlers[@]}"
    check "$mta: AUTH PLAIN after the restart -> 235" auth_accepted PLAIN "$GOOD_PASSWORD" --tls

    in_ct systemctl stop kopano-standin
    check "$mta: testsaslauthd with server stopped fails" testsaslauthd_fails "$GOOD_PASSWORD" "$socket_dir"
    check "$mta: AUTH PLAIN with server stopped not 235" auth_not_accepted PLAIN "$GOOD_PASSWORD" --tls
    check "$mta: AUTH LOGIN with server stopped not 235" auth_not_accepted LOGIN "$GOOD_PASSWORD" --tls

    check "$mta: journal has pam_mapi lines" journal_mentions_pam_mapi
    check "$mta: journal holds no password" journal_has_no_password

    if [ "$mta" = postfix ]; then
        check "role rejects an invalid protocol" rejects_invalid_protocol
        check_settings_rejected_on_host
        in_ct systemctl start kopano-standin
        check "$mta: throttle_failures=2 rejects the third logon" throttles_after_two_failures "$socket_dir"
    fi

    render_el "$mta"
    stop_container
}

# Sets pam_mapi_throttle_failures to 2 and then checks that the module reads
# it: after two wrong passwords, the right one is rejected without contacting
# the server. Runs after the other logon checks, because alice then stays
# locked out for the throttle window.
throttles_after_two_failures() {
    local socket_dir=$1 name="run with throttling"
    playbook "$name" "$TEST_DIR/e2e.yml" -e pam_mapi_mta=postfix -e pam_mapi_package_file="$PAM_MAPI_DEB" \
        -e pam_mapi_throttle_failures=2 -e pam_mapi_throttle_window=600 || return 1
    in_ct grep -x 'throttle_failures = 2' /etc/security/pam_mapi.conf || return 1
    for _ in $(seq 1 50); do
        in_ct test -S "$STANDIN_SOCKET" && break
        sleep 0.2
    done
    testsaslauthd_ok "$GOOD_PASSWORD" "$socket_dir" || return 1
    testsaslauthd_fails "$BAD_PASSWORD" "$socket_dir" || return 1
    testsaslauthd_fails "$BAD_PASSWORD" "$socket_dir" || return 1
    echo "right password after two failures:"
    testsaslauthd_fails "$GOOD_PASSWORD" "$socket_dir"
}

# Succeeds when the role stops before any change, with a message that names
# the invalid value.
rejects_invalid_protocol() {
    local name="invalid protocol"
    ! playbook "$name" "$TEST_DIR/e2e.yml" -e pam_mapi_mta=postfix -e pam_mapi_protocol=gopher &&
        grep -F 'pam_mapi_protocol=\"gopher\"' "$WORK/$name.log" &&
        echo "$RECAP" | grep -q 'changed=0 '
}

# Applies the role with state and throttle file paths that differ as text but
# name one file, because /var/run is a link to /run. The validate tasks let
# them through and the module rejects them, so the template task's validate
# step (pam_mapi-check --settings-only) must fail and leave the old
# pam_mapi.conf in place.
check_settings_rejected_on_host() {
    local name="settings rejected on the host" log before after
    log=$WORK/$name.log
    check "pam_mapi-check has --settings-only" \
        sh -c "nsenter -t $leader -a pam_mapi-check --help | grep -e --settings-only"
    check "pam_mapi-check accepts the installed file" \
        in_ct pam_mapi-check --settings-only config=/etc/security/pam_mapi.conf

    before=$(in_ct sha256sum /etc/security/pam_mapi.conf)
    playbook "$name" "$TEST_DIR/e2e.yml" -e pam_mapi_mta=postfix -e pam_mapi_package_file="$PAM_MAPI_DEB" \
        -e pam_mapi_state_file=/var/run/pam_mapi-shared.state -e pam_mapi_throttle_file=/run/pam_mapi-shared.state
    after=$(in_ct sha256sum /etc/security/pam_mapi.conf)

    check "same file via /var/run: role fails" sh -c "echo '$RECAP' | grep -q 'failed=1 '"
    check "same file via /var/run: template task fails" template_validate_failed "$log"
    check "same file via /var/run: exit status 3" grep -F '"exit_status": 3' "$log"
    check "same file via /var/run: message names the files" \
        grep -F 'name the same file or its lock file' "$log"
    check "same file via /var/run: pam_mapi.conf unchanged" test "$before" = "$after"
    check "same file via /var/run: nothing changed" sh -c "echo '$RECAP' | grep -q 'changed=0 '"
}

# Succeeds when the playbook output in LOG shows the template task for
# pam_mapi.conf failing in its validate step.
template_validate_failed() {
    sed -n '/^TASK \[pam_mapi : Write the pam_mapi configuration file\]/,/^\(TASK\|PLAY\|RUNNING\)/p' "$1" |
        grep -E '^fatal: .*"msg": "failed to validate"'
}

# --- Validation of the role variables ------------------------------------------

# Runs the role's validate tasks for every case of validate_cases.yml at once,
# as localhost aliases. Each case must fail with a message that names the
# variable and the value, or pass when it sets only valid values.
check_validate_cases() {
    local inventory=$TEST_DIR/validate_cases.yml host name
    log "validate tasks with each case of $(basename "$inventory")"
    ansible-inventory -i "$inventory" --list > "$WORK/validate-inventory.json" ||
        { fail "list the validate cases"; return; }
    # ansible-playbook exits non-zero because most cases fail on purpose, so
    # only the result of each host counts.
    ANSIBLE_ROLES_PATH=$ROLE_DIR/roles ANSIBLE_STDOUT_CALLBACK=json ANSIBLE_RETRY_FILES_ENABLED=0 \
        ansible-playbook -i "$inventory" "$TEST_DIR/validate.yml" \
        > "$WORK/validate-result.json" 2> "$WORK/validate-stderr.log"
    if [ ! -s "$WORK/validate-result.json" ]; then
        fail "run validate.yml"
        tail -n 30 "$WORK/validate-stderr.log"
        return
    fi
    for host in $(python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["_meta"]["hostvars"]))' \
        < "$WORK/validate-inventory.json"); do
        case $host in
            valid_*) name="validate accepts $host" ;;
            *) name="validate rejects $host" ;;
        esac
        check "$name" python3 "$TEST_DIR/validate_result.py" \
            "$WORK/validate-result.json" "$WORK/validate-inventory.json" "$host"
    done
}

# --- EL 9 rendering ----------------------------------------------------------------

# Renders the role with the EL variables into /srv/el in the running
# container (its /tmp is a fresh tmpfs), then checks the files with the container's postconf or m4.
render_el() {
    local mta=$1 dest=/srv/el
    local root=$WORK/ct-$mta
    rm -rf "$root$dest"
    mkdir -p "$root$dest"/etc/{security,pam.d,sysconfig,sasl2,postfix,mail}
    cp "$TEST_DIR/fixtures/el9-main.cf" "$root$dest/etc/postfix/main.cf"
    cp "$TEST_DIR/fixtures/el9-master.cf" "$root$dest/etc/postfix/master.cf"
    cp "$TEST_DIR/fixtures/el9-sendmail.mc" "$root$dest/etc/mail/sendmail.mc"

    playbook_ok "EL 9 $mta: render" "$TEST_DIR/render_el.yml" \
        -e "pam_mapi_mta=$mta" -e "pam_mapi_destdir=$dest" || return

    check "EL 9 $mta: pam_mapi.conf lists the server" \
        grep -qx 'socket = https://kopano.example.test:237/kopano' "$root$dest/etc/security/pam_mapi.conf"
    check "EL 9 $mta: pam_mapi.conf lists the services" \
        grep -qx 'service = imap|pop3' "$root$dest/etc/security/pam_mapi.conf"
    check "EL 9 $mta: pam_mapi.conf sets throttle_failures" \
        grep -qx 'throttle_failures = 5' "$root$dest/etc/security/pam_mapi.conf"
    check "EL 9 $mta: pam_mapi.conf sets throttle_window" \
        grep -qx 'throttle_window = 900' "$root$dest/etc/security/pam_mapi.conf"
    check "EL 9 $mta: pam_mapi.conf sets throttle_file" \
        grep -qx 'throttle_file = /run/pam_mapi/smtp-throttle.state' "$root$dest/etc/security/pam_mapi.conf"
    check "EL 9 $mta: PAM file is smtp.$mta" \
        grep -qE '^auth +required +pam_mapi.so try_first_pass$' "$root$dest/etc/pam.d/smtp.$mta"
    check "EL 9 $mta: system stack includes password-auth" \
        grep -qE '^auth +include +password-auth$' "$root$dest/etc/pam.d/smtp-system"
    check "EL 9 $mta: saslauthd uses PAM" \
        grep -qx 'MECH=pam' "$root$dest/etc/sysconfig/saslauthd"
    check "EL 9 $mta: saslauthd socket in /run/saslauthd" \
        grep -qx 'SOCKETDIR=/run/saslauthd' "$root$dest/etc/sysconfig/saslauthd"

    if [ "$mta" = postfix ]; then
        check "EL 9 postfix: smtpd.conf points to saslauthd" \
            grep -qx 'saslauthd_path: /run/saslauthd/mux' "$root$dest/etc/sasl2/smtpd.conf"
        check "EL 9 postfix: postconf reads main.cf without warnings" \
            sh -c "[ -z \"\$(nsenter -t $leader -a postconf -c $dest/etc/postfix -n 2>&1 >/dev/null)\" ]"
        check "EL 9 postfix: smtpd_sasl_auth_enable = yes" \
            sh -c "nsenter -t $leader -a postconf -c $dest/etc/postfix smtpd_sasl_auth_enable | grep -qx 'smtpd_sasl_auth_enable = yes'"
        check "EL 9 postfix: smtpd_tls_auth_only = yes" \
            sh -c "nsenter -t $leader -a postconf -c $dest/etc/postfix smtpd_tls_auth_only | grep -qx 'smtpd_tls_auth_only = yes'"
        check "EL 9 postfix: certificate is postfix.pem" \
            sh -c "nsenter -t $leader -a postconf -c $dest/etc/postfix smtpd_tls_cert_file | grep -qx 'smtpd_tls_cert_file = /etc/pki/tls/certs/postfix.pem'"
    else
        # EL's sendmail.mc includes cf.m4 from sendmail-cf's directory.
        in_ct ln -sfn /usr/share/sendmail/cf /usr/share/sendmail-cf
        check "EL 9 sendmail: Sendmail.conf points to saslauthd" \
            grep -qx 'saslauthd_path: /run/saslauthd/mux' "$root$dest/etc/sasl2/Sendmail.conf"
        check "EL 9 sendmail: m4 builds sendmail.cf" \
            sh -c "nsenter -t $leader -a m4 $dest/etc/mail/sendmail.mc > '$root$dest/etc/mail/sendmail.cf'"
        check "EL 9 sendmail: AuthMechanisms=PLAIN LOGIN" \
            grep -qx 'O AuthMechanisms=PLAIN LOGIN' "$root$dest/etc/mail/sendmail.cf"
        check "EL 9 sendmail: AuthOptions has p" \
            grep -qE '^O AuthOptions=A,? ?p$' "$root$dest/etc/mail/sendmail.cf"
        check "EL 9 sendmail: ServerCertFile is sendmail.pem" \
            grep -qx 'O ServerCertFile=/etc/pki/tls/certs/sendmail.pem' "$root$dest/etc/mail/sendmail.cf"
        check "EL 9 sendmail: block precedes the mailers" \
            sh -c "grep -n -e 'confAUTH_MECHANISMS' -e '^MAILER(smtp)' '$root$dest/etc/mail/sendmail.mc' | head -n 1 | grep -q confAUTH_MECHANISMS"
    fi
}

# --- Main ----------------------------------------------------------------------------

main() {
    mkdir -p "$CACHE"
    WORK=$(mktemp -d "$CACHE/run.XXXXXX")
    trap 'stop_container' EXIT
    trap 'echo "interrupted"; finish' INT TERM

    with_cache_lock install_tools || { fail "install the test tools"; finish; }
    find_artifacts || { fail "find libpam-mapi and kopano-standin"; finish; }

    check "ansible-lint (production profile)" \
        env -C "$ROLE_DIR" NO_COLOR=1 "$CACHE/lint-venv/bin/ansible-lint" --offline --profile production \
        site.yml inventory roles/pam_mapi "$TEST_DIR/e2e.yml" "$TEST_DIR/render_el.yml" "$TEST_DIR/validate.yml"
    check_validate_cases

    run_mta postfix kopano_only /var/spool/postfix/var/run/saslauthd
    run_mta sendmail kopano_and_system /var/run/saslauthd

    finish
}

main "$@"
