#!/usr/bin/env bash
# Installs everything, builds, and runs every test (benchmarks excluded: they
# are run by hand, see tests/bench/RESULTS.md). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
deploy/build.sh
cd "${QLORAD_BUILD_DIR:-build}"
# Idle OpenMP/OpenBLAS threads sleep instead of spinning (what qlorad and qlorad-tool set for
# themselves, core/util/cpu_runtime.h): the in-process test binaries get it too, and two
# tests running side by side do not spin against each other.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
ctest --output-on-failure -j"$(nproc)" --timeout 1200
