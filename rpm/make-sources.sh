#!/bin/sh
# Make the two Source tarballs that rpm/pam_mapi.spec builds from:
#   pam_mapi-VERSION.tar.gz         the source tree (files tracked by git, plus
#                                   new files that .gitignore does not exclude)
#   pam_mapi-VERSION-vendor.tar.gz  vendor/ with every crate in Cargo.lock
# Usage: rpm/make-sources.sh [OUTPUT-DIR]   (default: the current directory)
# Needs git, cargo and network access to crates.io for the vendor tarball.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "${1:-.}"
out=$(cd "${1:-.}" && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
if [ -z "$version" ]; then
    echo "make-sources.sh: no version = \"...\" line found in $repo/Cargo.toml; run the script from a pam_mapi checkout" >&2
    exit 1
fi
name=pam_mapi-$version

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir "$staging/$name"

# Copy the working tree, so that uncommitted changes are packaged too, but not
# a vendor/ left by debian/vendor-crates.sh.
cd "$repo"
git ls-files -z --cached --others --exclude-standard -- . ':(exclude)vendor' |
    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar -cf - --null -T - | tar -xf - -C "$staging/$name"

tar -C "$staging" --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"

cd "$staging/$name"
cargo vendor --locked --versioned-dirs --quiet vendor > /dev/null
tar -C "$staging/$name" --owner=0 --group=0 --numeric-owner -czf "$out/$name-vendor.tar.gz" vendor

echo "$out/$name.tar.gz"
echo "$out/$name-vendor.tar.gz"
