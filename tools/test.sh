#!/usr/bin/env bash
# test.sh - install dependencies, build, and run the whole test suite twice:
# a normal build (build/) and an ASan+UBSan build (build-asan/). Ends with
# each run's ctest summary and a total line; exits non-zero on any build
# or test failure. This is what CI runs (.ci/run).
#
# Environment: JOBS (default 2) for make and ctest; STORK_SKIP_ASAN=1 runs
# only the normal build; STORK_SKIP_DEPS=1 skips tools/deps.sh (not root);
# STORK_TEST_BUILD_DIR / STORK_TEST_ASAN_DIR choose the build directories.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
top=$PWD
jobs=${JOBS:-2}

if [ -z "${STORK_SKIP_DEPS:-}" ]; then
    bash tools/deps.sh || { echo "test.sh: tools/deps.sh failed" >&2; exit 1; }
fi

# Any sanitizer report fails the run: ASan/UBSan stop the process
# (halt_on_error, and the build uses -fno-sanitize-recover=undefined),
# LeakSanitizer reports leaks at exit (it works in this environment:
# checked with a deliberate leak), and the e2e harness fails a test when
# a daemon wrote a report.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="report_objects=1"

declare -a summaries=()
total_pass=0 total_fail=0 total_skip=0 status=0

# run_suite NAME BUILD_DIR CMAKE_ARGS... - configure, build, ctest
run_suite() {
    local name=$1 dir=$2; shift 2
    local log="$dir/ctest.log"
    echo "=== $name: configure and build ($dir)"
    if ! cmake -S "$top" -B "$dir" "$@" >/dev/null; then
        echo "test.sh: $name: cmake configure failed" >&2
        summaries+=("$name: configure FAILED"); total_fail=$((total_fail + 1)); status=1; return
    fi
    if ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
        grep -E 'error|Error' "$dir/build.log" | head -40 >&2
        echo "test.sh: $name: build failed (full log: $dir/build.log)" >&2
        summaries+=("$name: build FAILED"); total_fail=$((total_fail + 1)); status=1; return
    fi
    echo "=== $name: ctest"
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 600 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line total failed skipped
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        summaries+=("$name: ctest printed no summary (exit $rc)"); total_fail=$((total_fail + 1)); status=1; return
    fi
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
    failed=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
    skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)' "$log" || true)
    total_fail=$((total_fail + failed))
    total_skip=$((total_skip + skipped))
    total_pass=$((total_pass + total - failed - skipped))
    summaries+=("$name: $line ($skipped skipped)")
    [ "$rc" -eq 0 ] || status=1
}

run_suite normal "${STORK_TEST_BUILD_DIR:-$top/build}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTORK_SANITIZE=OFF
if [ -z "${STORK_SKIP_ASAN:-}" ]; then
    run_suite asan "${STORK_TEST_ASAN_DIR:-$top/build-asan}" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTORK_SANITIZE=ON
fi

echo
echo "=== summary"
for s in "${summaries[@]}"; do echo "$s"; done
echo "total: $total_pass passed, $total_fail failed, $total_skip skipped"
exit "$status"
