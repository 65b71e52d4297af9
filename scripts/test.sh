#!/usr/bin/env bash
# Sets up and runs the whole test suite: unit tests, real processes over QUIC/WebRTC on
# loopback, real libretro cores, and the browser tests in headless Chromium.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh
echo "== homebrew game matches its source"
games/build.sh --check
echo "== build"
# The binaries, and the NVENC test double (a cdylib: `--bins` does not build it).
cargo build --workspace --bins --examples
cargo build -p retrofarm-nvenc-double
echo "== cargo tests"
cargo test --workspace --no-fail-fast
echo "== fuzzing, short: every parser that reads outside bytes, ~25 s each (docs/fuzzing.md)"
fuzz/run.sh --short
echo "== benchmarks, short mode (so they cannot rot)"
bench/quick.sh
echo "== browser tests (headless Chromium)"
(cd web && npm test)
echo "== monitoring: alert rules, dashboards, queries"
monitoring/check.sh
echo "== ansible: lint, syntax, convergence in a debootstrap root"
ansible/test.sh
echo "== all tests passed"
