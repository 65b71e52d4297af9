#!/usr/bin/env bash
# Downloads (never installs) NVIDIA's user-space driver libraries from Debian 12's non-free
# archive and unpacks them into DIR, so that tests can load the real libnvidia-encode.so.1 and
# libcuda.so.1 on a host without an NVIDIA GPU (gpu/nvenc/tests/nvidia_libs.rs).
#
#   scripts/fetch-nvidia-libs.sh DIR
#
# The libraries end up in DIR/usr/lib/x86_64-linux-gnu/nvidia/current/ (where Debian's packages
# put them; the system-wide links are made by update-alternatives, which is not run here), and
# DIR/nvidia-libs.txt lists the packages and versions unpacked. A DIR that already has them is
# left as it is.
#
# The system is not changed: apt runs with its own sources list, package lists and cache in a
# temporary directory (the system's sources, lists, cache and installed packages are untouched),
# and the packages are unpacked with `dpkg -x`, which installs nothing.
#
# Exit status: 0 done (or already there); 2 the packages cannot be fetched on this host (no
# apt-get or dpkg, not amd64, no network or mirror, package not found); 1 anything else.
set -euo pipefail

# libnvidia-encode.so.1 needs libnvcuvid.so.1 (DT_NEEDED); the tests load libcuda.so.1. The
# package libcuda1 also depends on libnvidia-ptxjitcompiler1 and libnvidia-pkcs11-openssl3,
# which libcuda dlopens only to JIT-compile PTX and for confidential computing: neither is
# opened by what the tests run (cuInit, cuDriverGetVersion, NVENC's version and table; checked
# with strace), so they are not fetched.
PACKAGES=(libnvidia-encode1 libnvcuvid1 libcuda1)
LIBS=(libnvidia-encode.so.1 libnvcuvid.so.1 libcuda.so.1)
LIBDIR=usr/lib/x86_64-linux-gnu/nvidia/current
MIRROR=${RETROFARM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { printf 'fetch-nvidia-libs: %s\n' "$*" >&2; }
fail() {
    local status=$1
    shift
    say "FAILED: $*"
    exit "$status"
}

[[ $# -eq 1 && -n $1 ]] || fail 1 "usage: $0 DIR"
DIR=$1

complete() {
    [[ -f $DIR/nvidia-libs.txt ]] || return 1
    local lib
    for lib in "${LIBS[@]}"; do
        [[ -e $DIR/$LIBDIR/$lib ]] || return 1
    done
}

if complete; then
    say "already in $DIR/$LIBDIR: $(paste -sd, "$DIR/nvidia-libs.txt" | sed 's/,/, /g')"
    exit 0
fi
# DIR is replaced as a whole below: only when it is ours (an earlier run's, with other
# packages) or empty.
if [[ -e $DIR && ! -f $DIR/nvidia-libs.txt ]] && [[ ! -d $DIR || -n $(ls -A "$DIR") ]]; then
    fail 1 "$DIR exists and was not made by this script: give an empty or new directory"
fi

for tool in apt-get dpkg dpkg-deb; do
    command -v "$tool" >/dev/null || fail 2 "$tool not found: this script needs a Debian-based host"
done
arch=$(dpkg --print-architecture)
[[ $arch == amd64 ]] || fail 2 "only amd64 is supported (this host is $arch)"

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-nvidia-libs.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"

signed_by=""
[[ -r $KEYRING ]] && signed_by=" [signed-by=$KEYRING]"
echo "deb$signed_by $MIRROR $SUITE main non-free non-free-firmware" >"$work/sources.list"

apt_options=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "Acquire::Languages=none"
    # Fail in seconds, not minutes, where there is no network.
    -o "Acquire::Retries=1"
    -o "Acquire::http::Timeout=30"
)
if [[ $(id -u) -eq 0 ]]; then
    if id _apt >/dev/null 2>&1; then
        # apt drops to _apt to download: let it reach the private directories.
        chmod 0755 "$work"
        chown _apt "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
    else
        apt_options+=(-o "APT::Sandbox::User=root")
    fi
fi

run() {
    local status=$1 what=$2
    shift 2
    if ! "$@" >"$work/log" 2>&1; then
        cat "$work/log" >&2
        fail "$status" "$what"
    fi
}

say "reading $MIRROR $SUITE (main non-free) into a private package list"
run 2 "apt-get update against $MIRROR $SUITE failed (no network, or the mirror is unreachable: set RETROFARM_DEBIAN_MIRROR)" \
    apt-get "${apt_options[@]}" --error-on=any update
say "downloading ${PACKAGES[*]}"
(cd "$work/debs" && run 2 "apt-get download ${PACKAGES[*]} failed" apt-get "${apt_options[@]}" download "${PACKAGES[@]}")

mkdir -p "$(dirname "$DIR")"
staging=$(mktemp -d "$DIR.partial.XXXXXX")
chmod 0755 "$staging"
: >"$staging/nvidia-libs.txt"
for deb in "$work"/debs/*.deb; do
    run 1 "dpkg -x $(basename "$deb") failed" dpkg -x "$deb" "$staging"
    dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >>"$staging/nvidia-libs.txt"
done
for lib in "${LIBS[@]}"; do
    [[ -e $staging/$LIBDIR/$lib ]] || { rm -rf "$staging"; fail 1 "$lib is not in $LIBDIR after unpacking ${PACKAGES[*]}"; }
done
rm -rf "$DIR"
mv -T "$staging" "$DIR"
say "unpacked into $DIR/$LIBDIR: $(paste -sd, "$DIR/nvidia-libs.txt" | sed 's/,/, /g')"
