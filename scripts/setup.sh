#!/usr/bin/env bash
# Installs what retrofarm needs to build, run and test on Debian 12, idempotently:
# system packages (codecs' build tools, cc65, Chromium for browser tests), the libretro cores
# (without RetroArch's desktop packages), and the web tests' npm packages.
#
#   scripts/setup.sh          # everything
#   scripts/setup.sh --run    # only what running the service needs
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${1:-all}"

sudo_cmd=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); fi
apt_opts=(-y -q -o DPkg::Lock::Timeout=900 --no-install-recommends)

# Build tools for the codecs: openh264 (nasm: without it the assembly is silently lost), the
# bundled libopus (cmake), libvpx for VP8; cc65 assembles our homebrew game.
packages=(pkg-config cmake nasm cc65 libvpx-dev)
if [ "$mode" != "--run" ]; then
    # Browser tests: Debian's Chromium driven by playwright-core (node and npm from Debian
    # unless the machine already has them).
    packages+=(chromium prometheus python3-yaml)
    # The monitoring tests: node_exporter scraped next to the services (e2e/tests/monitoring.rs),
    # Alertmanager delivering alerts (monitoring/check.sh).
    packages+=(prometheus-node-exporter prometheus-alertmanager)
    # The TURN relay test (web/tests/edge.test.mjs) runs a real coturn on loopback.
    packages+=(coturn)
    # The GPU path's tests run on Mesa's lavapipe (Vulkan on the CPU) and need the loader.
    packages+=(libvulkan1 mesa-vulkan-drivers)
    # The `peer` benchmark's GStreamer pipeline (x264enc, opusenc, RTP payloaders).
    packages+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly)
    # The network tests impair a veth link with iptables (loss, outages, the NFQUEUE delay
    # program) and tc from iproute2: e2e/tests/network.rs, docs/network-tests.md.
    packages+=(iptables)
    command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install "${apt_opts[@]}" "${missing[@]}"
fi

"$repo/scripts/fetch-cores.sh"

# The save store's S3 tests run against s3s-fs, an S3-compatible server that checks request
# signatures (0.14.1: the last release that builds with Rust 1.95).
if [ "$mode" != "--run" ] && [ ! -x "$repo/.deps/s3s/bin/s3s-fs" ]; then
    echo "setup: building s3s-fs (S3-compatible test server) into .deps/s3s"
    cargo install s3s-fs@0.14.1 --features binary --locked --quiet --root "$repo/.deps/s3s"
fi

if [ "$mode" != "--run" ] && [ -f "$repo/web/package.json" ]; then
    (cd "$repo/web" && { [ -d node_modules/playwright-core ] || npm install --no-audit --no-fund --loglevel=error; })
fi
echo "setup: done"
