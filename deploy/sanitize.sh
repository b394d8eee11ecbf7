#!/usr/bin/env bash
# Builds unit tests with sanitizers in a build tree of their own (ccache shared with the
# main build) and runs them.
#
#   deploy/sanitize.sh [address|thread] [TEST ...]
#
# address (default): ASan + UBSan (-fno-sanitize-recover: any finding fails the test),
#   LeakSanitizer on; tree ${QLORAD_ASAN_BUILD_DIR:-build-asan}. Default tests: the
#   parser, tokenizer, data, model-IO, store, eval, structured-output and kernel tests
#   (ASAN_TESTS below).
# thread: TSan; tree ${QLORAD_TSAN_BUILD_DIR:-build-tsan}. Default tests: serving,
#   batching, adapter registry (TSAN_TESTS). libtorch is not TSan-instrumented: the
#   suppressions in tests/sanitize/tsan.supp are scoped to its libraries (see there).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
ASAN_TESTS=(gguf_reader_test gguf_writer_test training_options_test qlorad_data_test qlorad_data_holdout_access_test
            tokenizer_unit_test tokenizer_sentencepiece_test tokenizer_hf_differential_test
            structured_output_unit_test openai_request_test qlorad_store_test qlorad_adapter_store_test
            qlorad_eval_test crash_consistency_hook model_io_test kernels_test sgmv_test)
TSAN_TESTS=(serving_batching_test serving_adapter_registry_test structured_output_batching_test
            promotion_gate_core_test console_review_core_test tsan_canary_unguarded tsan_canary_guarded)

kind=${1:-address}
[[ $# -gt 0 ]] && shift
case $kind in
  address) build_dir=${QLORAD_ASAN_BUILD_DIR:-build-asan}; sanitizers=address,undefined; tests=("${ASAN_TESTS[@]}") ;;
  thread) build_dir=${QLORAD_TSAN_BUILD_DIR:-build-tsan}; sanitizers=thread; tests=("${TSAN_TESTS[@]}") ;;
  *) echo "usage: deploy/sanitize.sh [address|thread] [TEST ...]" >&2; exit 2 ;;
esac
[[ $# -gt 0 ]] && tests=("$@")

cmake -S "$src" -B "$build_dir" -G Ninja -DQLORAD_SANITIZE="$sanitizers" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" >/dev/null
targets=("${tests[@]/tsan_canary_*/tsan_canary}")  # the canary's two tests share one binary
cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]}"

supp=$src/tests/sanitize
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
export LSAN_OPTIONS=suppressions=$supp/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp
export TSAN_OPTIONS=suppressions=$supp/tsan.supp:halt_on_error=1:second_deadlock_stack=1:report_signal_unsafe=0
# The sanitizer tree builds no qlorad-tool (most of the project, with libtorch): its one
# test that runs the tool is left to the main tree.
export GTEST_FILTER=${GTEST_FILTER:--HfDifferentialTest.ToolTokenizeMatchesNativeHfTokenizers}
regex="^($(IFS='|'; echo "${tests[*]}"))\$"
cd "$build_dir"
ctest --output-on-failure -j"$(nproc)" --timeout 1800 -R "$regex"
