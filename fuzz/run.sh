#!/usr/bin/env bash
# Fuzzes every parser that reads bytes from outside (docs/fuzzing.md) with cargo-fuzz
# (libFuzzer), on the stable toolchain.
#
#   fuzz/run.sh --short [TARGET...]          # ~25 s per target (CI)
#   fuzz/run.sh --long SECONDS [TARGET...]   # SECONDS per target
#   fuzz/run.sh --list                       # the targets
#
# Builds once (all targets, sanitizer coverage, debug assertions), then runs each target on
# its committed seeds (fuzz/corpus/TARGET, read only) plus the corpus earlier runs grew
# (fuzz/target/corpus/TARGET, where new inputs go). Prints a summary line per target
# (executions, coverage, corpus) and exits non-zero if any target crashed, hung or ran out of
# memory; the input that did it is in fuzz/artifacts/TARGET/, the log in fuzz/target/logs/.
set -euo pipefail
fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz"
export PATH="$HOME/.cargo/bin:$PATH"

# Per target: libFuzzer's -max_len (inputs larger than the parser ever needs only slow it).
declare -A MAX_LEN=(
    [browser_msg]=4096
    [link_frames]=8192
    [input_packet]=256
    [game_command]=2048
    [emulator_shm]=8400
    [emulator_control]=4096
    [worker_config]=4096
    [coordinator_config]=4096
    [coordinator_origin]=1024
    [save_file]=8192
)
ALL=(browser_msg link_frames input_packet game_command emulator_shm emulator_control worker_config
    coordinator_config coordinator_origin save_file)

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

seconds=""
case "${1:-}" in
    --short) seconds=25; shift ;;
    --long)
        [[ "${2:-}" =~ ^[0-9]+$ ]] || usage
        seconds="$2"
        shift 2
        ;;
    --list) printf '%s\n' "${ALL[@]}"; exit 0 ;;
    *) usage ;;
esac
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
    [ -n "${MAX_LEN[$t]:-}" ] || { echo "run.sh: unknown target $t (fuzz/run.sh --list)" >&2; exit 2; }
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# Sanitizer: none. The parsers are safe Rust; the one unsafe module they reach (the emulator's
# shared-memory Region) bounds-checks every access and maps memory AddressSanitizer does not
# track. Without ASan the targets build on stable Rust and run several times faster; panics,
# debug assertions and integer overflow checks still count as crashes.
fuzz_args=(--sanitizer none)

echo "== building the fuzz targets"
start=$(date +%s)
cargo fuzz build "${fuzz_args[@]}"
echo "built in $(($(date +%s) - start)) s"

mkdir -p target/logs
failed=()
summary=()
for t in "${targets[@]}"; do
    echo "== $t: $seconds s"
    mkdir -p "target/corpus/$t" "corpus/$t"
    log="target/logs/$t.log"
    rc=0
    cargo fuzz run "${fuzz_args[@]}" "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len="${MAX_LEN[$t]}" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    # The last status line: "#N DONE cov: C ft: F corp: K/SIZE ..." (or the last one before a crash).
    status=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$status")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$status")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$status")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed+=("$t")
        # What failed and where (long lines, such as the input's bytes, cut short).
        { grep -E -A14 "panicked at|ERROR: libFuzzer|Failing input" "$log" || tail -n 40 "$log"; } | cut -c1-300 | head -n 60
    fi
    line=$(printf '%-20s %-10s execs %-11s exec/s %-8s cov %-6s ft %-7s corpus %s' \
        "$t" "$result" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")
    echo "$line"
    summary+=("$line")
done

echo "== summary ($seconds s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/target/logs/)" >&2
    exit 1
fi
echo "no crashes"
