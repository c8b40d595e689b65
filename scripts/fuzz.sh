#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes (the targets in fuzz/fuzz_targets/,
# each calling one function of src/untrusted.rs) for SECONDS each (default
# 60), one after the other, with cargo-fuzz (libFuzzer) on the nightly
# toolchain:
#
#     bash scripts/fuzz.sh          # 60 s per target
#     bash scripts/fuzz.sh 600      # longer
#     bash scripts/fuzz.sh 30 parquet log_file    # only these targets
#
# Each target starts from fuzz/seeds/<target>/ and keeps what it learns in
# fuzz/corpus/<target>/ (not committed). Prints, per target, the inputs
# executed and whether it crashed (a panic, a sanitizer report, a timeout or
# running out of memory); every such input is copied into
# fuzz/regressions/<target>/, which tests/fuzz_replay.rs replays on stable
# in the ordinary test run. Exits 1 when any target crashed.
#
# Not part of the test suite. Environment: FUZZ_SANITIZER (address, the
# default, or none: faster, catches panics only), FUZZ_ARGS (more libFuzzer
# options), CARGO_BUILD_JOBS (parallel build jobs).
set -euo pipefail

cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi
sanitizer=${FUZZ_SANITIZER:-address}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzzing needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi

# The parsers that read a file get a temporary one per input: in memory
# when possible.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

# The largest input worth trying: a little over the largest real file of
# that kind (the seeds).
max_len() {
    case $1 in
        link) echo 256 ;;
        log_line | image_config) echo 2048 ;;
        policy | registry_config | s3_manifest | s3_csv) echo 4096 ;;
        manifest | conservative_refs) echo 8192 ;;
        log_file | parquet | journal | inventory) echo 16384 ;;
        saved_plan) echo 32768 ;;
        *) echo 8192 ;;
    esac
}

echo "building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)" >&2
nice -n 19 cargo +nightly fuzz build --sanitizer "$sanitizer" >&2
# Run from the build just made (cargo fuzz run would rebuild whenever a
# source changed meanwhile).
bin="fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}

crashed=()
summary=()
for t in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "no fuzz target $t" >&2
        exit 2
    fi
    corpus="fuzz/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    # Only this run's findings are collected below.
    find "$artifacts" -type f -delete
    log="fuzz/artifacts/$t.log"
    echo "== $t: ${secs}s, max_len $(max_len "$t")" >&2
    set +e
    # shellcheck disable=SC2086
    nice -n 19 "$bin/$t" -artifact_prefix="$artifacts/" \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=20 \
        -print_final_stats=1 ${FUZZ_ARGS:-} "$corpus" "fuzz/seeds/$t" >"$log" 2>&1
    status=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    if [ -z "$runs" ]; then
        runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    fi
    if [ -z "$runs" ]; then
        runs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -1)
    fi
    found=()
    while IFS= read -r -d '' a; do
        found+=("$a")
    done < <(find "$artifacts" -type f -print0)
    if [ ${#found[@]} -gt 0 ] || [ $status -ne 0 ]; then
        mkdir -p "fuzz/regressions/$t"
        for a in "${found[@]}"; do
            cp "$a" "fuzz/regressions/$t/"
            echo "   reproducer: fuzz/regressions/$t/$(basename "$a")" >&2
        done
        grep -m1 -A1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)|==ERROR" "$log" | sed 's/^/   /' >&2 || true
        echo "   log: $log" >&2
        crashed+=("$t")
        summary+=("$(printf '%-18s %12s executions  CRASHED (%d input(s), exit %d)' "$t" "${runs:-?}" "${#found[@]}" "$status")")
    else
        summary+=("$(printf '%-18s %12s executions  ok' "$t" "${runs:-?}")")
    fi
    echo "${summary[-1]}" >&2
done

echo
echo "fuzzing summary (${secs}s per target, sanitizer $sanitizer):"
printf '  %s\n' "${summary[@]}"
if [ ${#crashed[@]} -gt 0 ]; then
    echo "crashed: ${crashed[*]} (reproducers in fuzz/regressions/<target>/; replay: cargo test --release --test fuzz_replay)"
    exit 1
fi
echo "no crashes"
