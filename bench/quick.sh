#!/usr/bin/env bash
# Runs every benchmark in its short mode (a few seconds each) so they cannot rot. Each prints
# its figures and exits 0; a benchmark that cannot run here (no ROM, no core, no GStreamer, no
# Chromium) says why and is skipped. Figures from --quick runs mean nothing: see
# docs/performance.md for the real runs.
#
#   bench/quick.sh            # debug build in $CARGO_TARGET_DIR (default target/)
#   BENCH_PROFILE=release bench/quick.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"
profile="${BENCH_PROFILE:-debug}"
target="${CARGO_TARGET_DIR:-$repo/target}"
flag=()
[ "$profile" = release ] && flag=(--release)
bins="$target/$profile"

echo "== bench: building ($profile)"
# The worker, coordinator, emulator and benchmark binaries, and the probe core (a cdylib:
# `--bins` alone does not build it).
cargo build "${flag[@]}" --workspace --bins
cargo build "${flag[@]}" -p retrofarm-probe-core

echo "== bench: density --quick"
"$bins/density" --quick
echo "== bench: peer --quick"
"$bins/peer" --quick
echo "== bench: gpu --quick"
"$bins/gpu" --quick
echo "== bench: sessions --quick"
"$bins/sessions" --quick
echo "== bench: network --quick (needs root: network namespaces; says SKIPPED otherwise)"
"$bins/network" --quick
echo "== bench: audio --quick"
"$bins/audio" --quick
echo "== bench: library --quick"
"$bins/library" --quick
echo "== bench: latency --quick"
if command -v node >/dev/null; then
    node bench/latency/latency.mjs --quick --bin-dir "$bins"
else
    echo "latency: SKIPPED: node is not installed"
fi
echo "== bench: all quick runs finished"
