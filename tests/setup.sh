#!/usr/bin/env bash
# Installs what building and testing pam_mapi needs on Debian 12, and starts a
# syslog daemon so that the module's log lines can be checked. Safe to run again.
set -euo pipefail

packages=(libpam0g-dev pamtester libpam-wrapper libpam-modules rsyslog ca-certificates binutils)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust 1.88 or later (https://rustup.rs) and run again" >&2
    exit 1
fi

# The logging tests read authpriv lines from /var/log/auth.log. A /dev/log left
# behind by a syslog daemon that has exited rejects every message, so send a
# test message instead of checking that the socket file exists.
if ! logger --socket-errors=on -u /dev/log -p authpriv.debug "pam_mapi test setup: syslog check" 2>/dev/null; then
    echo "setup: starting rsyslogd"
    rm -f /dev/log
    rsyslogd 2>/dev/null || rsyslogd -iNONE
    for _ in $(seq 50); do
        logger --socket-errors=on -u /dev/log -p authpriv.debug "pam_mapi test setup: syslog check" 2>/dev/null && break
        sleep 0.1
    done
    logger --socket-errors=on -u /dev/log -p authpriv.debug "pam_mapi test setup: syslog check" ||
        { echo "setup: rsyslogd started but /dev/log rejects messages; check /var/log/syslog and /etc/rsyslog.conf" >&2; exit 1; }
fi
