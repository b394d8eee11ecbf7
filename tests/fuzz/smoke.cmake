# Fuzzing smoke in the default test run (issue 21): fuzz_build builds the clang
# libFuzzer tree (deploy/fuzz.sh --build-only: build-fuzz/ at the repository root, the
# tree and corpora deploy/fuzz.sh uses too) and writes the seeds; then every target
# replays its regression inputs and fuzzes for 6 seconds from the seeds alone (≤ 10 s per
# target in all).
add_test(NAME fuzz_build COMMAND ${PROJECT_SOURCE_DIR}/deploy/fuzz.sh --build-only)
# RUN_SERIAL: a build of its own on every core; timing-sensitive tests must not share them.
set_tests_properties(fuzz_build PROPERTIES FIXTURES_SETUP qlorad_fuzz_tree TIMEOUT 2400 LABELS fuzz RUN_SERIAL TRUE)
file(GLOB _qlorad_fuzzers RELATIVE ${CMAKE_CURRENT_LIST_DIR} ${CMAKE_CURRENT_LIST_DIR}/*_fuzzer.cc)
foreach(_file ${_qlorad_fuzzers})
  string(REPLACE "_fuzzer.cc" "" _target ${_file})
  add_test(NAME fuzz_${_target} COMMAND ${PROJECT_SOURCE_DIR}/deploy/fuzz.sh --smoke 6 ${_target})
  set_tests_properties(fuzz_${_target} PROPERTIES FIXTURES_REQUIRED qlorad_fuzz_tree TIMEOUT 300 LABELS fuzz)
endforeach()
