#!/bin/sh
# Create the authselect custom profile "custom/mapi". It is a copy of a base
# profile (default "local") in which the feature "with-mapi" adds pam_mapi to
# system-auth and password-auth. The base profile needs the two pam_unix lines
# named below. NOTE: tested with "local" of authselect 1.5.0 only.
#
# Usage: create-mapi-profile.sh [BASE-PROFILE]
# Then:  authselect select custom/mapi with-mapi
#
# pam_mapi goes right after the "auth sufficient pam_unix.so" line, so local
# users are checked first and the jump counts of the base profile stay valid.
# Its account line goes right before "account required pam_unix.so", where it
# accepts a user that pam_mapi authenticated and leaves everyone else to
# pam_unix.
set -eu

base=${1:-local}
profile_dir=/etc/authselect/custom/mapi

if [ -e "$profile_dir" ]; then
    echo "create-mapi-profile.sh: $profile_dir already exists; remove it first to create the profile again" >&2
    exit 1
fi

authselect create-profile mapi --base-on="$base" \
    --symlink-meta --symlink-nsswitch --symlink-dconf

for file in system-auth password-auth; do
    awk '
        /^account[ \t]+required[ \t]+pam_unix\.so/ && !account_done {
            printf "%-12s%-45s%-55s%s\n", "account", "sufficient", "pam_mapi.so", "{include if \"with-mapi\"}"
            account_done = 1
        }
        { print }
        /^auth[ \t]+sufficient[ \t]+pam_unix\.so/ && !auth_done {
            printf "%-12s%-45s%-55s%s\n", "auth", "sufficient", "pam_mapi.so try_first_pass quiet", "{include if \"with-mapi\"}"
            auth_done = 1
        }
        END { if (!auth_done || !account_done) exit 1 }
    ' "$profile_dir/$file" > "$profile_dir/$file.new" || {
        rm -f "$profile_dir/$file.new"
        echo "create-mapi-profile.sh: $profile_dir/$file has no \"auth sufficient pam_unix.so\" or \"account required pam_unix.so\" line; add the pam_mapi lines marked {include if \"with-mapi\"} by hand" >&2
        exit 1
    }
    mv "$profile_dir/$file.new" "$profile_dir/$file"
done

cat >> "$profile_dir/README" <<'README'

FEATURE ADDED BY PAM_MAPI
-------------------------

with-mapi::
    Also accept users and passwords that a Kopano, Zarafa, grommunio or
    Exchange server confirms, through *pam_mapi*. The servers are set in
    /etc/security/pam_mapi.conf; see pam_mapi.conf(5).
README

echo "Created authselect profile custom/mapi from $base. Select it with: authselect select custom/mapi with-mapi"
