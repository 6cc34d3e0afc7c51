#!/usr/bin/env bash
# Builds and checks the packages of pam_mapi on Debian 12, as root:
#   - the man pages (mandoc lint, rendering, every option documented);
#   - libpam-mapi built by cargo deb and by dpkg-buildpackage from debian/,
#     offline from vendored crates, each checked with lintian;
#   - the RPM built by rpmbuild from rpm/pam_mapi.spec, checked with rpmlint
#     and installed into a scratch rpm root;
#   - both .debs installed into a clean bookworm chroot (mmdebstrap), where
#     pamtester authenticates through each example PAM stack against the
#     stand-in server on 127.0.0.1, and then purged;
#   - the authselect profile, with trixie's authselect in the same chroot.
# Installs what it needs with apt-get and cargo install. Work files go to
# $PAM_MAPI_PACKAGES_WORK (default /tmp/pam_mapi-packages), the Rust build to
# $CARGO_TARGET_DIR (default target/). Prints one PASS or FAIL line per check
# and ends with "N passed, N failed"; the exit status is 1 on any failure.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/tests/packages
work=${PAM_MAPI_PACKAGES_WORK:-/tmp/pam_mapi-packages}
log_dir=$work/logs
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}

# shellcheck source=tests/packages/lib.sh
source "$here/lib.sh"

if [ "$(id -u)" != 0 ]; then
    echo "run.sh: must run as root (it uses apt-get, chroot, rpm --root and unshare)" >&2
    exit 2
fi
rm -rf "$log_dir"
mkdir -p "$work" "$log_dir"

# mandoc lints the man pages. debhelper, cargo-web and rustc-web are the
# Build-Depends of debian/control, because bookworm's own rustc 1.63 is too old.
# mmdebstrap makes the install chroot.
setup_host() {
    local packages=(mandoc man-db groff-base lintian dpkg-dev debhelper cargo-web rustc-web libpam0g-dev
        rpm rpmlint mmdebstrap pamtester git ca-certificates)
    local missing=() package
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2> /dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        apt-get update -q || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
    fi
    if ! command -v cargo-deb > /dev/null; then
        cargo install cargo-deb --locked || return 1
    fi
}

check "host packages and cargo-deb installed" setup_host || {
    echo "0 passed, 1 failed"
    exit 1
}

# shellcheck source=tests/packages/manpages.sh
source "$here/manpages.sh"
# shellcheck source=tests/packages/debian.sh
source "$here/debian.sh"
# shellcheck source=tests/packages/rpm.sh
source "$here/rpm.sh"
# shellcheck source=tests/packages/chroot.sh
source "$here/chroot.sh"

echo "$passed passed, $failed failed"
((failed == 0))
