#!/usr/bin/env bash
# Installs everything, builds, and runs every test (benchmarks excluded: they
# are run by hand, see tests/bench/RESULTS.md). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
deploy/build.sh
cd "${QLORAD_BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)" --timeout 1200
