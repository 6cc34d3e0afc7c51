#!/bin/sh
# Copy the source of every crate in Cargo.lock into vendor/ at the top of the
# source tree, so that debian/rules can build without network access.
# Needs network access (crates.io) once. vendor/ is not kept in git.
set -eu

cd "$(dirname "$0")/.."
rm -rf vendor
# cargo vendor prints the matching source replacement for .cargo/config.toml;
# debian/rules writes its own, so the output is not needed.
cargo vendor --locked --versioned-dirs vendor > /dev/null
echo "vendor-crates.sh: vendored $(ls vendor | wc -l) crates into $(pwd)/vendor"
