# Install tests in a clean Debian 12 chroot made by mmdebstrap: install each
# .deb, authenticate with pamtester through every example stack against the
# stand-in server on 127.0.0.1, purge, and try the authselect profile with
# trixie's authselect. Sourced by run.sh. The chroot shares the host's network
# namespace, so the module inside reaches the stand-in on the host's loopback.

chroot_root=$work/chroot
chroot_packages=pamtester,man-db,libpopt0
rootfs_tar=$work/bookworm-$(printf '%s' "$chroot_packages" | md5sum | cut -c1-8).tar
authselect_dir=$work/authselect
standin_bin=$CARGO_TARGET_DIR/debug/kopano-standin
examples=/usr/share/doc/libpam-mapi/examples
kopano_password='Kopano-Secret-1'
system_password='System-Secret-2'
standin_pids=()
standin_url=""

stop_standins() {
    local pid
    for pid in "${standin_pids[@]}"; do
        kill "$pid" 2> /dev/null
    done
    standin_pids=()
}
trap stop_standins EXIT

# start_standin NAME [ARG...]: starts kopano-standin on a free port of
# 127.0.0.1 and sets standin_url to the URL that it prints once ready.
start_standin() {
    local output=$work/standin-$1.out
    shift
    "$standin_bin" --listen 127.0.0.1:0 "$@" > "$output" 2>&1 &
    standin_pids+=($!)
    standin_url=""
    for _ in $(seq 100); do
        standin_url=$(sed -n 's/^listening on //p' "$output" | head -n 1)
        [ -n "$standin_url" ] && return 0
        sleep 0.1
    done
    echo "kopano-standin printed no 'listening on' line within 10 s:"
    cat "$output"
    return 1
}

build_standin() {
    (cd "$repo" && cargo build --locked --package kopano-standin) && [ -x "$standin_bin" ]
}

# The bookworm root file system is made once and kept in $work as a tar file.
prepare_chroot() {
    if [ ! -s "$rootfs_tar" ]; then
        mmdebstrap --variant=apt --format=tar --include="$chroot_packages" bookworm "$rootfs_tar.new" \
            http://deb.debian.org/debian || return 1
        mv "$rootfs_tar.new" "$rootfs_tar"
    fi
    rm -rf "$chroot_root"
    mkdir -p "$chroot_root"
    tar -C "$chroot_root" -xf "$rootfs_tar" || return 1
    # carol is a system user only, for the stacks that fall back to pam_unix.
    chroot "$chroot_root" useradd --create-home carol || return 1
    printf 'carol:%s\n' "$system_password" | chroot "$chroot_root" chpasswd
}

# Every file of the chroot with its mode and owner, except the paths that apt,
# dpkg and man-db change on any install.
list_chroot_files() {
    local r=$chroot_root
    find "$r" \( -path "$r/var/log" -o -path "$r/var/lib/dpkg" -o -path "$r/var/lib/apt" -o -path "$r/var/cache" \
        -o -path "$r/tmp" -o -path "$r/run" -o -path "$r/proc" \) -prune -o -printf '%M %u:%g /%P\n' | sort
}

pam_stack_checksums() {
    (cd "$chroot_root/etc/pam.d" && sha256sum -- *)
}

install_deb() {
    cp "$1" "$chroot_root/tmp/" &&
        chroot "$chroot_root" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "/tmp/$(basename "$1")"
}

check_pam_stack_unchanged() {
    expect_equal "checksums of /etc/pam.d" "$(cat "$work/pam.d.before")" "$(pam_stack_checksums)"
}

check_installed_conffile() {
    expect_equal "mode and owner of /etc/security/pam_mapi.conf" "644 root:root" \
        "$(stat -c '%a %U:%G' "$chroot_root/etc/security/pam_mapi.conf")" || return 1
    chroot "$chroot_root" dpkg-query -W -f='${Conffiles}\n' libpam-mapi | grep -q '^ /etc/security/pam_mapi.conf '
}

check_man_pages_found() {
    local page
    for page in pam_mapi pam_mapi.conf pam_mapi-check; do
        chroot "$chroot_root" man -w "$page" || return 1
    done
}

# install_template NAME [SED-SCRIPT]: copies the example stack NAME into
# /etc/pam.d of the chroot as service NAME, edited by SED-SCRIPT.
install_template() {
    sed -e "${2:-}" "$chroot_root$examples/pam.d/$1" > "$chroot_root/etc/pam.d/$1"
}

# pam_accepts SERVICE USER PASSWORD / pam_rejects ...: pamtester runs
# pam_authenticate and pam_acct_mgmt in the chroot.
pam_accepts() {
    printf '%s\n' "$3" | chroot "$chroot_root" pamtester "$1" "$2" authenticate acct_mgmt
}
pam_rejects() {
    if printf '%s\n' "$3" | chroot "$chroot_root" pamtester "$1" "$2" authenticate acct_mgmt; then
        echo "pamtester: $1 accepted $2 with a wrong password"
        return 1
    fi
}

# The installed pam_mapi-check reads /etc/security/pam_mapi.conf, probes the
# server and, with --user, prints the module's PAM result.
check_tool_accepts() {
    local output
    output=$(printf '%s\n' "$kopano_password" | chroot "$chroot_root" pam_mapi-check --user alice) || {
        echo "$output"
        echo "pam_mapi-check exited with status $? for the right password"
        return 1
    }
    echo "$output"
    grep -q 'result: PAM_SUCCESS' <<< "$output"
}

check_tool_rejects() {
    local status=0
    printf 'wrong-password\n' | chroot "$chroot_root" pam_mapi-check --user alice || status=$?
    expect_equal "exit status of pam_mapi-check for a wrong password" 8 "$status"
}

check_purged() {
    local status=0 path
    for path in $(cat "$work/package.files"); do
        [ -d "$chroot_root$path" ] && continue
        [ ! -e "$chroot_root$path" ] || { echo "left after purge: $path"; status=1; }
    done
    expect_equal "files of the chroot before install and after purge" "$(cat "$work/files.before")" "$(list_chroot_files)" || status=1
    return $status
}

# test_deb LABEL DEB: one install, use and purge cycle.
test_deb() {
    local label=$1 deb=$2
    list_chroot_files > "$work/files.before"
    pam_stack_checksums > "$work/pam.d.before"
    check "$label: apt installs the package" install_deb "$deb" || return
    chroot "$chroot_root" dpkg-query -L libpam-mapi > "$work/package.files"
    check "$label: install leaves /etc/pam.d unchanged" check_pam_stack_unchanged
    check "$label: pam_mapi.conf is a root-owned conffile" check_installed_conffile
    check "$label: man -w finds the man pages" check_man_pages_found

    printf 'socket = %s\n' "$soap_url" > "$chroot_root/etc/security/pam_mapi.conf"
    check "$label: pam_mapi-check confirms alice" check_tool_accepts
    check "$label: pam_mapi-check exits 8 on wrong password" check_tool_rejects

    install_template smtp-kopano
    install_template smtp-kopano-system-debian
    install_template smtp-grommunio "s|socket=https://mail.example.com/|socket=$mapi_url|; s|default_domain=example.com|default_domain=example.test|"

    check "$label: smtp-kopano accepts alice" pam_accepts smtp-kopano alice "$kopano_password"
    check "$label: smtp-kopano rejects wrong password" pam_rejects smtp-kopano alice wrong-password
    check "$label: smtp-kopano rejects system user" pam_rejects smtp-kopano carol "$system_password"
    check "$label: stacked Debian accepts alice" pam_accepts smtp-kopano-system-debian alice "$kopano_password"
    check "$label: stacked Debian rejects wrong password" pam_rejects smtp-kopano-system-debian alice wrong-password
    check "$label: stacked Debian accepts system user" pam_accepts smtp-kopano-system-debian carol "$system_password"
    check "$label: stacked Debian rejects wrong system password" pam_rejects smtp-kopano-system-debian carol wrong-password
    check "$label: smtp-grommunio accepts alice" pam_accepts smtp-grommunio alice "$kopano_password"
    check "$label: smtp-grommunio rejects wrong password" pam_rejects smtp-grommunio alice wrong-password

    rm -f "$chroot_root/etc/pam.d/smtp-kopano" "$chroot_root/etc/pam.d/smtp-kopano-system-debian" "$chroot_root/etc/pam.d/smtp-grommunio"
    check "$label: apt purge removes the package" chroot "$chroot_root" apt-get purge -y libpam-mapi &&
        check "$label: purge leaves nothing behind" check_purged
}

# trixie's authselect and libauthselect3 .debs, fetched with a private apt
# configuration so that the host's sources stay untouched.
download_authselect() {
    ls "$authselect_dir"/authselect_*.deb "$authselect_dir"/libauthselect3_*.deb > /dev/null 2>&1 && return 0
    rm -rf "$authselect_dir"
    mkdir -p "$authselect_dir/state/lists/partial" "$authselect_dir/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
        > "$authselect_dir/sources.list"
    local options=(-o "Dir::Etc::SourceList=$authselect_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State=$authselect_dir/state" -o "Dir::Cache=$authselect_dir/cache")
    apt-get "${options[@]}" update -q || return 1
    (cd "$authselect_dir" && apt-get "${options[@]}" download authselect libauthselect3)
}

prepare_authselect() {
    install_deb "$debian_deb_file" || return 1
    printf 'socket = %s\n' "$soap_url" > "$chroot_root/etc/security/pam_mapi.conf"
    cp "$authselect_dir"/authselect_*.deb "$authselect_dir"/libauthselect3_*.deb "$chroot_root/tmp/" &&
        chroot "$chroot_root" sh -c 'dpkg -i /tmp/authselect_*.deb /tmp/libauthselect3_*.deb' &&
        chroot "$chroot_root" sh "$examples/authselect/create-mapi-profile.sh" local
}

check_authselect_test_with_feature() {
    local rendered
    rendered=$(chroot "$chroot_root" authselect test --system-auth --password-auth custom/mapi with-mapi) || return 1
    echo "$rendered"
    expect_equal "pam_mapi auth lines" 2 "$(grep -c '^auth  *sufficient  *pam_mapi\.so try_first_pass quiet' <<< "$rendered")" || return 1
    expect_equal "pam_mapi account lines" 2 "$(grep -c '^account  *sufficient  *pam_mapi\.so' <<< "$rendered")"
}

check_authselect_test_without_feature() {
    local rendered
    rendered=$(chroot "$chroot_root" authselect test --system-auth --password-auth custom/mapi) || return 1
    echo "$rendered"
    ! grep -n pam_mapi <<< "$rendered"
}

check_authselect_select() {
    chroot "$chroot_root" authselect select custom/mapi with-mapi --force &&
        chroot "$chroot_root" authselect check
}

check_authselect_select_without_feature() {
    chroot "$chroot_root" authselect select custom/mapi --force &&
        chroot "$chroot_root" authselect check
}

test_authselect() {
    check "authselect profile is created" prepare_authselect || return
    check "authselect test with-mapi adds pam_mapi" check_authselect_test_with_feature
    check "authselect test without feature omits pam_mapi" check_authselect_test_without_feature
    if check "authselect select with-mapi passes check" check_authselect_select; then
        check "system-auth with-mapi accepts alice" pam_accepts system-auth alice "$kopano_password"
        check "system-auth with-mapi rejects wrong password" pam_rejects system-auth alice wrong-password
        check "system-auth with-mapi accepts system user" pam_accepts system-auth carol "$system_password"
        check "password-auth with-mapi accepts alice" pam_accepts password-auth alice "$kopano_password"
    fi
    if check "authselect select without feature passes check" check_authselect_select_without_feature; then
        check "system-auth without feature rejects alice" pam_rejects system-auth alice "$kopano_password"

        # The RHEL-family example includes password-auth, which authselect has
        # just generated without pam_mapi.
        install_template smtp-kopano-system-rhel
        check "stacked RHEL accepts alice" pam_accepts smtp-kopano-system-rhel alice "$kopano_password"
        check "stacked RHEL rejects wrong password" pam_rejects smtp-kopano-system-rhel alice wrong-password
        check "stacked RHEL accepts system user" pam_accepts smtp-kopano-system-rhel carol "$system_password"
        check "stacked RHEL rejects wrong system password" pam_rejects smtp-kopano-system-rhel carol wrong-password
    fi
}

if ! $cargo_deb_built && ! $debian_deb_built; then
    skip "install tests in a chroot" "no .deb was built"
elif check "kopano-standin builds" build_standin &&
    check "stand-in Kopano server starts" start_standin soap --user "alice:$kopano_password" &&
    soap_url=$standin_url &&
    check "stand-in Gromox server starts" start_standin mapihttp --mapihttp --user "alice@example.test:$kopano_password" &&
    mapi_url=$standin_url &&
    check "bookworm chroot is prepared" prepare_chroot; then

    if $debian_deb_built; then
        test_deb "debian/ package" "$debian_deb_file"
    fi
    if $cargo_deb_built; then
        test_deb "cargo deb package" "$cargo_deb_file"
    fi
    if $debian_deb_built && check "authselect .debs downloaded from trixie" download_authselect; then
        test_authselect
    fi
fi
stop_standins
