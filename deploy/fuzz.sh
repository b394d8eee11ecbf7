#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan+UBSan, a build tree of their own) and
# runs each for SECONDS (default 60) over its seed corpus, after replaying the crash
# regressions in tests/fuzz/regressions/<target>/.
#
#   deploy/fuzz.sh [--build-only | --no-build | --smoke] [SECONDS] [TARGET ...]
#
# Targets: every tests/fuzz/<target>_fuzzer.cc. Build tree:
# ${QLORAD_FUZZ_BUILD_DIR:-build-fuzz}; seeds (tests/fuzz/make_seeds.py) and the growing
# corpus live there too. Each run prints one summary line (executions, exec/s, coverage
# and features) and appends it to <build tree>/fuzz-summary.txt. Exit status 1 if any
# target crashed, leaked or timed out on an input; the input is left in
# <build tree>/crashes/<target>/ (fix it, then check it in under tests/fuzz/regressions/).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
FUZZ_TARGETS=()
for f in tests/fuzz/*_fuzzer.cc; do FUZZ_TARGETS+=("$(basename "$f" _fuzzer.cc)"); done

mode=run
case "${1:-}" in
  --build-only) mode=build; shift ;;
  --no-build) mode=nobuild; shift ;;
  --smoke) mode=smoke; shift ;;  # no build; start from the seeds alone (a fresh corpus), as ctest does
esac
seconds=${1:-60}
[[ $# -gt 0 ]] && shift
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${FUZZ_TARGETS[@]}")
build_dir=${QLORAD_FUZZ_BUILD_DIR:-build-fuzz}
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)

build() {
  CC=clang-14 CXX=clang++-14 cmake -S "$src" -B "$build_dir" -G Ninja -DQLORAD_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" >/dev/null
  cmake --build "$build_dir" --target qlorad_fuzzers -j"$(nproc)"
  if [[ ! -f $build_dir/seeds/.done || $src/tests/fuzz/make_seeds.py -nt $build_dir/seeds/.done ]]; then
    rm -rf "$build_dir/seeds"
    /usr/bin/python3 "$src/tests/fuzz/make_seeds.py" "$build_dir/seeds"
    touch "$build_dir/seeds/.done"
  fi
}

# Replays the checked-in regression inputs of $1: each must run clean.
replay_regressions() {
  local target=$1 bin=$2 dir=$src/tests/fuzz/regressions/$1
  [[ -d $dir ]] || return 0
  local inputs=("$dir"/*)
  [[ -e ${inputs[0]} ]] || return 0
  if ! "$bin" -runs=1 "${inputs[@]}" >"$build_dir/logs/$target.regressions.log" 2>&1; then
    echo "fuzz: $target: a regression input crashes again (log: $build_dir/logs/$target.regressions.log)" >&2
    tail -30 "$build_dir/logs/$target.regressions.log" >&2
    return 1
  fi
  echo "fuzz: $target: ${#inputs[@]} regression input(s) clean"
}

# Fuzzes $1 for $seconds and prints its summary line.
fuzz_one() {
  local target=$1 bin=$build_dir/tests/fuzz/$1_fuzzer
  local corpus=$build_dir/corpus/$target crashes=$build_dir/crashes/$target log=$build_dir/logs/$target.log
  if [[ $mode == smoke ]]; then  # a grown corpus would take longer to load than the smoke may run
    corpus=$build_dir/smoke-corpus/$target log=$build_dir/logs/$target.smoke.log
    rm -rf "$corpus"
  fi
  mkdir -p "$corpus" "$crashes" "$build_dir/logs"
  [[ -x $bin ]] || { echo "fuzz: $bin is missing (run deploy/fuzz.sh --build-only)" >&2; return 1; }
  replay_regressions "$target" "$bin" || return 1
  local dict=()
  [[ -f $src/tests/fuzz/$target.dict ]] && dict=("-dict=$src/tests/fuzz/$target.dict")
  local rc=0
  QLORAD_FUZZ_FIXTURES=$build_dir/seeds/fixtures \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "${dict[@]}" "$corpus" "$build_dir/seeds/$target" >"$log" 2>&1 || rc=$?
  local execs rate cov ft
  # -a: libFuzzer may print raw input bytes (dictionary entries, inputs) into the log.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -ao 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  local line
  line="fuzz: $target: ${seconds}s, ${execs:-?} executions, ${rate:-?} exec/s, cov ${cov:-?}, features ${ft:-?}, corpus $(ls "$corpus" | wc -l) files"
  if [[ $rc -ne 0 ]]; then
    echo "$line: FAILED (exit $rc; inputs in $crashes, log $log)" | tee -a "$build_dir/fuzz-summary.txt" >&2
    grep -aE "ERROR|SUMMARY|runtime error|#[0-9]+ 0x" "$log" | head -25 >&2
    return 1
  fi
  echo "$line" | tee -a "$build_dir/fuzz-summary.txt"
}

[[ $mode == nobuild || $mode == smoke ]] || build
[[ $mode == build ]] && exit 0
failed=0
for t in "${targets[@]}"; do
  fuzz_one "$t" || failed=1
done
exit $failed
