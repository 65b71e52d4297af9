#!/usr/bin/env bash
# Builds the Debian packages retrofarm-coordinator and retrofarm-worker with cargo-deb, from a
# release build, into target/debian/. The worker package also carries retrofarm-emulator (a
# binary of the emulator crate), so all three binaries are built first and cargo-deb only packs.
#
#   packaging/build-debs.sh                    # needs cargo-deb (cargo install cargo-deb)
#   packaging/build-debs.sh --install-tools    # installs cargo-deb and dpkg-dev first
#
# Package contents: see [package.metadata.deb] in coordinator/Cargo.toml and
# farm-worker/Cargo.toml, and the files in packaging/ (units, default configuration, service
# user, maintainer scripts).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"

if [ "${1:-}" = "--install-tools" ]; then
    # dpkg-shlibdeps (dpkg-dev) computes the $auto dependencies.
    command -v dpkg-shlibdeps >/dev/null 2>&1 ||
        apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends dpkg-dev
    cargo deb --version >/dev/null 2>&1 || cargo install --locked cargo-deb
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-debs: cargo-deb is missing: run with --install-tools, or cargo install cargo-deb" >&2
    exit 1
fi

cargo build --release -p retrofarm-coordinator -p farm-worker -p retrofarm-emulator --bins
cargo deb --no-build -p retrofarm-coordinator
cargo deb --no-build -p farm-worker
ls -l target/debian/*.deb
