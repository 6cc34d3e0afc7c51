#!/usr/bin/env bash
# Benchmarks pam_mapi.so: builds the module and the harness in release mode,
# makes a throwaway test CA with openssl, and runs benches/harness, which prints
# a Markdown report (machine, times, ratios, memory, size, saslauthd rate).
#
# Usage, as root on Debian 12: bash benches/run.sh [--rounds N] [--repeat N]
#   [--curl-rounds N] [--rate-seconds N] [--rate-threads N] [--server-delay-ms N]
# Every server listens on loopback or on a Unix socket in a temporary directory.
# The saslauthd part writes /etc/pam.d/pam_mapi_bench_PID and removes it again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "run.sh: run as root; saslauthd and the PAM service file need it" >&2
    exit 1
fi

packages=(libpam0g-dev libpam-modules sasl2-bin curl openssl binutils)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "run.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

target=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR=$target
cargo build --release --locked -p pam_mapi --lib >&2
# Not --locked: the stand-in is a path dependency whose own dependencies may
# change without this lock file.
cargo build --release --manifest-path benches/harness/Cargo.toml >&2

work=$(mktemp -d /tmp/pam_mapi-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A CA and a server certificate for 127.0.0.1, valid for two days. RSA 2048,
# the common choice for a kopano-server certificate.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pam_mapi bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 2 -extfile "$work/server.ext" -out "$work/server.pem" 2>/dev/null

echo "## Run of $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- command: \`bash benches/run.sh $*\`"
echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "- kernel: $(uname -r); $(rustc --version)"
echo "- load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

"$target/release/pam_mapi-bench" --module "$target/release/libpam_mapi.so" \
    --cafile "$work/ca.pem" --cert "$work/server.pem" --key "$work/server.key" --work "$work" "$@"

echo
echo "- load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
