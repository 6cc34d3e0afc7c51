#!/usr/bin/env bash
# Builds pam_mapi and runs real PAM authentications through libpam (pamtester,
# with pam_wrapper supplying a private service directory, so /etc/pam.d is not
# touched).
#
#   bash tests/demo.sh                                 stand-in Kopano server on 127.0.0.1,
#                                                      right and wrong password
#   bash tests/demo.sh --server URL [--user NAME] [-- MODULE ARGS...]
#                                                      your own server: asks for the password
set -euo pipefail
cd "$(dirname "$0")/.."

server=""
user="alice"
extra=()
while (($#)); do
    case $1 in
        --server) server=${2:?--server needs a URL such as https://kopano.example.com:237/}; shift 2 ;;
        --user) user=${2:?--user needs a name}; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "demo: unknown option $1; see --help" >&2; exit 2 ;;
    esac
done

bash tests/setup.sh
echo "demo: building (release)"
cargo build --release --locked -q -p pam_mapi -p kopano-standin
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
module=$target_dir/release/libpam_mapi.so

work=$(mktemp -d)
standin_pid=""
cleanup() {
    [ -n "$standin_pid" ] && kill "$standin_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

password='Secr3t&<pass>'
if [ -z "$server" ]; then
    "$target_dir/release/kopano-standin" --listen 127.0.0.1:0 --user "alice:$password" > "$work/standin.out" &
    standin_pid=$!
    for _ in $(seq 100); do grep -q '^listening on' "$work/standin.out" 2>/dev/null && break; sleep 0.05; done
    server=$(sed -n 's/^listening on //p' "$work/standin.out" | head -1)
    [ -n "$server" ] || { echo "demo: the stand-in server did not start" >&2; exit 1; }
    echo "demo: stand-in Kopano server at $server with user alice, password $password"
fi

mkdir -p "$work/pam.d"
printf 'auth required %s socket=%s %s\naccount required %s\n' "$module" "$server" "${extra[*]:-}" "$module" > "$work/pam.d/pam_mapi-demo"
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' > "$work/pam.d/other"
echo "demo: service file:"; sed 's/^/    /' "$work/pam.d/pam_mapi-demo"

attempt() {
    local label=$1 name=$2
    shift 2
    local output rc=0
    output=$(LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/pam.d" \
        pamtester pam_mapi-demo "$name" authenticate acct_mgmt "$@" 2>&1) || rc=$?
    local result
    case $output in
        *"successfully authenticated"*) result="PAM_SUCCESS" ;;
        *"Authentication failure"*) result="PAM_AUTH_ERR" ;;
        *"cannot retrieve authentication info"*) result="PAM_AUTHINFO_UNAVAIL" ;;
        *"Permission denied"*) result="PAM_PERM_DENIED" ;;
        *"Cannot make/remove an entry"*|*"service module"*) result="PAM_SERVICE_ERR" ;;
        *) result="other (pamtester exit $rc)" ;;
    esac
    printf 'demo: %-28s user=%-10s result: %s\n' "$label" "$name" "$result"
    printf '%s\n' "$output" | sed 's/^/    pamtester: /'
}

if [ -n "$standin_pid" ]; then
    printf '%s\n' "$password" > "$work/right"
    printf '%s\n' "wrong password" > "$work/wrong"
    attempt "right password" alice < "$work/right"
    attempt "wrong password" alice < "$work/wrong"
else
    echo "demo: pamtester asks for the password of $user (input is not echoed)"
    attempt "your password" "$user"
fi
echo "demo: module log lines are in /var/log/auth.log (facility authpriv)"
