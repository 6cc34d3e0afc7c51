# RPM checks: make-sources.sh, rpmbuild, rpm -qlp, install into a scratch
# root, rpmlint; sourced by run.sh.

rpm_top=$work/rpmbuild
rpm_file=$rpm_top/RPMS/$(rpm --eval '%{_arch}')/pam_mapi-$version-1.$(rpm --eval '%{_arch}').rpm
rpm_libdir=$(rpm --eval '%{_libdir}')

# rpmlint errors that Debian's rpmlint 2.4 raises only because it runs without
# Fedora's configuration. Fedora signs packages when it publishes them, and its
# packaging guidelines leave out the Packager and Group tags.
allowed_rpmlint_errors="no-signature
no-packager-tag
no-group-tag"

expected_rpm_files() {
    cat << LIST
/etc/security/pam_mapi.conf
$rpm_libdir/security/pam_mapi.so
/usr/bin/pam_mapi-check
/usr/share/man/man1/pam_mapi-check.1.gz
/usr/share/man/man5/pam_mapi.conf.5.gz
/usr/share/man/man8/pam_mapi.8.gz
/usr/share/licenses/pam_mapi-$version/LICENSE-BSD
/usr/share/licenses/pam_mapi-$version/LICENSE-GPL
/usr/share/doc/pam_mapi-$version/README.md
/usr/share/doc/pam_mapi-$version/examples/pam.d/smtp-kopano
/usr/share/doc/pam_mapi-$version/examples/pam.d/smtp-kopano-system-debian
/usr/share/doc/pam_mapi-$version/examples/pam.d/smtp-kopano-system-rhel
/usr/share/doc/pam_mapi-$version/examples/pam.d/smtp-grommunio
/usr/share/doc/pam_mapi-$version/examples/authselect/create-mapi-profile.sh
LIST
}

# Builds without network, as a distribution build system does: rpmbuild runs
# in a new network namespace with loopback only.
build_rpm() {
    rm -rf "$rpm_top"
    mkdir -p "$rpm_top/SOURCES"
    "$repo/rpm/make-sources.sh" "$rpm_top/SOURCES" || return 1
    env -u CARGO_TARGET_DIR unshare --net sh -c 'ip link set lo up && exec "$@"' sh \
        rpmbuild -bb --nodeps --define "_topdir $rpm_top" "$repo/rpm/pam_mapi.spec" &&
        [ -f "$rpm_file" ]
}

check_rpm_payload() {
    local status=0 listed
    # Regular files only: directories and the /usr/lib/.build-id links vary.
    listed=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm_file" | awk '$1 ~ /^-/ { print $2 }' | sort)
    expect_equal "files in $(basename "$rpm_file")" "$(expected_rpm_files | sort)" "$listed" || status=1
    local flags
    flags=$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file" | awk '$2 == "/etc/security/pam_mapi.conf" { print $1 }')
    expect_equal "file flags of pam_mapi.conf (c: %config, n: noreplace)" "cn" "$flags" || status=1
    local scripts
    scripts=$(rpm -qp --scripts "$rpm_file")
    [ -z "$scripts" ] || { echo "the RPM has scriptlets:"; echo "$scripts"; status=1; }
    return $status
}

check_rpm_install() {
    local root=$work/rpm-root
    rm -rf "$root"
    mkdir -p "$root"
    rpm --root "$root" --initdb || return 1
    rpm --root "$root" -i --nodeps "$rpm_file" || return 1
    [ -f "$root$rpm_libdir/security/pam_mapi.so" ] || { echo "pam_mapi.so not installed"; return 1; }
    expect_equal "mode of pam_mapi.conf" "644 root:root" "$(stat -c '%a %U:%G' "$root/etc/security/pam_mapi.conf")" || return 1
    rpm --root "$root" -V --nodeps pam_mapi || { echo "rpm -V found changed files right after the install"; return 1; }
    rpm --root "$root" -e --nodeps pam_mapi || return 1
    # Everything but the rpm database must be gone; Debian's rpm keeps it in
    # ~/.rpmdb, Fedora's in /usr/lib/sysimage/rpm.
    local left dbpath
    dbpath=$(rpm --eval '%{_dbpath}')
    left=$(find "$root" -path "$root$dbpath" -prune -o -path "$root/var/lib/rpm" -prune -o -type f -print)
    [ -z "$left" ] || { echo "files left after rpm -e:"; echo "$left"; return 1; }
}

# rpmlint must report no error except the allowed ones, on the spec and on the RPM.
check_rpmlint() {
    local output errors unexpected
    output=$(rpmlint "$repo/rpm/pam_mapi.spec" "$rpm_file" 2>&1)
    echo "$output"
    errors=$(sed -n 's/^[^ ]*: E: \([^ ]*\).*/\1/p' <<< "$output" | sort -u)
    unexpected=$(comm -23 <(printf '%s\n' "$errors" | sed '/^$/d') <(sort <<< "$allowed_rpmlint_errors"))
    [ -z "$unexpected" ] || { echo "unexpected rpmlint errors: $unexpected"; return 1; }
}

if check "rpmbuild builds the RPM offline" build_rpm; then
    check "RPM payload" check_rpm_payload
    check "RPM installs into a scratch root" check_rpm_install
    check "rpmlint finds only allowed errors" check_rpmlint
else
    skip "RPM payload" "rpmbuild failed"
    skip "RPM installs into a scratch root" "rpmbuild failed"
    skip "rpmlint finds only allowed errors" "rpmbuild failed"
fi
