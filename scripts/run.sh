#!/usr/bin/env bash
# Sets up and runs retrofarm locally: one coordinator and one worker with the project's own
# game, then prints the URL to open. Ctrl-C stops both.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"
http_port="${RETROFARM_HTTP_PORT:-8000}"

scripts/setup.sh --run
cargo build --release --bins
bin="$repo/target/release"

mkdir -p .retrofarm
"$bin/retrofarm-coordinator" run --http-listen "0.0.0.0:$http_port" --quic-listen 127.0.0.1:8443 \
    --web-root web --pki-dir .retrofarm/pki >.retrofarm/coordinator.log 2>&1 &
coord=$!
trap 'kill $coord ${worker:-} 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do grep -q "coordinator listening" .retrofarm/coordinator.log && break; sleep 0.1; done
"$bin/retrofarm-worker" --coordinator 127.0.0.1:8443 --pki-dir .retrofarm/pki --games-dir games \
    >.retrofarm/worker.log 2>&1 &
worker=$!
for _ in $(seq 100); do grep -q "registered with the coordinator" .retrofarm/worker.log && break; sleep 0.1; done

echo
echo "retrofarm is running: open http://localhost:$http_port/"
echo "logs: .retrofarm/coordinator.log .retrofarm/worker.log (Ctrl-C to stop)"
wait
