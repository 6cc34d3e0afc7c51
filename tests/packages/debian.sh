# Debian package checks: cargo deb, dpkg-buildpackage, lintian; sourced by run.sh.

version=$(package_version)
deb_arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
cargo_deb_dir=$work/cargo-deb
source_dir=$work/debian-source/pam-mapi-$version
cargo_deb_file=$cargo_deb_dir/libpam-mapi_${version}-1_${deb_arch}.deb
debian_deb_file=$work/debian-source/libpam-mapi_${version}-1_${deb_arch}.deb

# Files every libpam-mapi package must contain, with their modes. dh_compress
# compresses README.md (larger than 4 KiB), cargo deb does not, so the name of
# the README is the argument.
expected_deb_files() {
    cat << LIST
-rw-r--r-- ./etc/security/pam_mapi.conf
-rw-r--r-- ./usr/lib/$multiarch/security/pam_mapi.so
-rwxr-xr-x ./usr/bin/pam_mapi-check
-rw-r--r-- ./usr/share/man/man8/pam_mapi.8.gz
-rw-r--r-- ./usr/share/man/man5/pam_mapi.conf.5.gz
-rw-r--r-- ./usr/share/man/man1/pam_mapi-check.1.gz
-rw-r--r-- ./usr/share/doc/libpam-mapi/copyright
-rw-r--r-- ./usr/share/doc/libpam-mapi/$1
-rw-r--r-- ./usr/share/doc/libpam-mapi/changelog.Debian.gz
-rw-r--r-- ./usr/share/doc/libpam-mapi/examples/pam.d/smtp-kopano
-rw-r--r-- ./usr/share/doc/libpam-mapi/examples/pam.d/smtp-kopano-system-debian
-rw-r--r-- ./usr/share/doc/libpam-mapi/examples/pam.d/smtp-kopano-system-rhel
-rw-r--r-- ./usr/share/doc/libpam-mapi/examples/pam.d/smtp-grommunio
-rwxr-xr-x ./usr/share/doc/libpam-mapi/examples/authselect/create-mapi-profile.sh
-rw-r--r-- ./usr/share/lintian/overrides/libpam-mapi
LIST
}

# Regular files of a .deb as "MODE ./PATH", sorted.
deb_files() {
    dpkg-deb -c "$1" | awk '$1 !~ /^d/ { print $1, $6 }' | sort
}

# check_deb_contents DEB README-NAME
check_deb_contents() {
    local deb=$1 status=0
    expect_equal "files in $(basename "$deb")" "$(expected_deb_files "$2" | sort)" "$(deb_files "$deb")" || status=1

    # The configuration file is a conffile owned by root, and nothing touches
    # a PAM stack: no maintainer scripts, no /etc/pam.d, no pam-auth-update profile.
    local owner
    owner=$(dpkg-deb -c "$deb" | awk '$6 == "./etc/security/pam_mapi.conf" { print $2 }')
    # dpkg-deb prints the owner by name or, for cargo deb's archives, by number.
    case $owner in
        root/root | 0/0) ;;
        *) echo "owner of pam_mapi.conf: expected root/root, got $owner"; status=1 ;;
    esac
    expect_equal "conffiles" "/etc/security/pam_mapi.conf" "$(dpkg-deb -I "$deb" conffiles)" || status=1
    local control_dir
    control_dir=$(mktemp -d)
    dpkg-deb -e "$deb" "$control_dir"
    for script in preinst postinst prerm postrm config; do
        [ ! -e "$control_dir/$script" ] || { echo "$(basename "$deb") has a $script script"; status=1; }
    done
    rm -rf "$control_dir"
    if dpkg-deb -c "$deb" | grep -E '\./(etc/pam\.d|usr/share/pam-configs)/'; then
        echo "$(basename "$deb") ships files that change a PAM stack"
        status=1
    fi
    return $status
}

# The sample configuration must hold no secret-looking key.
check_conffile_has_no_secret() {
    ! grep -n -i -E '^[^#]*(password|secret|passwd)' "$repo/docs/pam_mapi.conf"
}

run_lintian() {
    # Fails on any error or warning; info tags are printed but allowed.
    lintian --fail-on error,warning --display-info "$1"
}

build_with_cargo_deb() {
    rm -rf "$cargo_deb_dir"
    mkdir -p "$cargo_deb_dir"
    (cd "$repo" && cargo deb --package pam_mapi --output "$cargo_deb_dir" -- --locked) && [ -f "$cargo_deb_file" ]
}

# Copies the tree, vendors the crates (with network), then builds without
# network: dpkg-buildpackage runs in a new network namespace whose only
# interface is loopback, which the unit tests of dh_auto_test may use.
build_with_dpkg_buildpackage() {
    rm -rf "$work/debian-source"
    copy_source_tree "$source_dir" || return 1
    (cd "$source_dir" && debian/vendor-crates.sh) || return 1
    # nocheck: the Rust tests run in the cargo-test suite of tests/run-all.sh,
    # and compiling them again in release mode adds minutes to the build.
    (cd "$source_dir" && env -u CARGO_TARGET_DIR DEB_BUILD_OPTIONS=nocheck \
        unshare --net sh -c 'ip link set lo up && exec dpkg-buildpackage -us -uc -b') &&
        [ -f "$debian_deb_file" ]
}

# Both builds must describe the same package. cargo deb takes the synopsis
# from the description in Cargo.toml and wraps the extended description
# itself, so the extended text is compared with its line breaks removed.
check_builds_agree() {
    local field status=0
    for field in Package Section Priority Maintainer Homepage; do
        expect_equal "$field" "$(dpkg-deb -f "$debian_deb_file" "$field")" "$(dpkg-deb -f "$cargo_deb_file" "$field")" || status=1
    done
    expect_equal "Description synopsis" "$(dpkg-deb -f "$debian_deb_file" Description | head -n 1)" \
        "$(dpkg-deb -f "$cargo_deb_file" Description | head -n 1)" || status=1
    expect_equal "extended Description" "$(dpkg-deb -f "$debian_deb_file" Description | tail -n +2 | tr -s ' \n' ' ')" \
        "$(dpkg-deb -f "$cargo_deb_file" Description | tail -n +2 | tr -s ' \n' ' ')" || status=1
    return $status
}

check "sample pam_mapi.conf holds no secret" check_conffile_has_no_secret

cargo_deb_built=false
if check "cargo deb builds libpam-mapi" build_with_cargo_deb; then
    cargo_deb_built=true
    check "cargo deb package contents" check_deb_contents "$cargo_deb_file" README.md
    check "lintian on cargo deb package" run_lintian "$cargo_deb_file"
fi

debian_deb_built=false
if check "dpkg-buildpackage builds offline" build_with_dpkg_buildpackage; then
    debian_deb_built=true
    check "dpkg-buildpackage package contents" check_deb_contents "$debian_deb_file" README.md.gz
    check "lintian on dpkg-buildpackage package" run_lintian "$debian_deb_file"
fi

if $cargo_deb_built && $debian_deb_built; then
    check "cargo deb and debian/ agree" check_builds_agree
else
    skip "cargo deb and debian/ agree" "a build failed"
fi
