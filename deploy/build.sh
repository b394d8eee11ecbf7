#!/usr/bin/env bash
# Configures and builds qlorad into ${QLORAD_BUILD_DIR:-build} (Ninja, ccache when present).
# Extra arguments go to cmake's configure step, e.g. -DCMAKE_PREFIX_PATH=<torch cmake prefix>.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${QLORAD_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja "$@"
cmake --build "$build_dir" -j"$(nproc)"
