#!/usr/bin/env bash
# Builds the Debian packages retrofarm-coordinator and retrofarm-worker with cargo-deb, from a
# release build, into target/debian/. The worker package also carries retrofarm-emulator (a
# binary of the emulator crate), so all three binaries are built first and cargo-deb only packs.
#
#   packaging/build-debs.sh                    # needs cargo-deb (cargo install cargo-deb)
#   packaging/build-debs.sh --install-tools    # installs cargo-deb and dpkg-dev first
#   packaging/test-debs.sh                     # then: install/upgrade/remove them in a Debian root
#
# Package contents: see [package.metadata.deb] in coordinator/Cargo.toml and
# farm-worker/Cargo.toml, and the files in packaging/ (units, default configuration, service
# user, and the part of the maintainer scripts that cargo-deb's systemd support does not write).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"

# The maintainer scripts need cargo-deb's systemd-units with sysusers support: the version they
# were checked with (packaging/test-debs.sh) or a later one.
min_cargo_deb=3.8.0
cargo_deb_ok() {
    local v
    v="$(cargo deb --version 2>/dev/null | awk '{print $2}')"
    [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$min_cargo_deb" "$v" | sort -V | head -1)" = "$min_cargo_deb" ]
}
if [ "${1:-}" = "--install-tools" ]; then
    # dpkg-shlibdeps (dpkg-dev) computes the $auto dependencies.
    command -v dpkg-shlibdeps >/dev/null 2>&1 ||
        apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends dpkg-dev
    cargo_deb_ok || cargo install --locked cargo-deb@"$min_cargo_deb"
fi
if ! cargo_deb_ok; then
    echo "build-debs: cargo-deb $min_cargo_deb or later is missing: run with --install-tools, or" \
        "cargo install --locked cargo-deb@$min_cargo_deb" >&2
    exit 1
fi

cargo build --release -p retrofarm-coordinator -p farm-worker -p retrofarm-emulator --bins
cargo deb --no-build -p retrofarm-coordinator
cargo deb --no-build -p farm-worker
ls -l target/debian/*.deb
