#!/usr/bin/env bash
# One-shot GPU check of qlorad's CUDA kernels (kernels/cuda/*.cu) on a machine with an
# NVIDIA GPU, nvcc and a python3 that imports torch with CUDA. No qlorad build, no
# abseil/gRPC/gtest needed. Run from anywhere:  bash deploy/gpu-check.sh
#
#   1. nvidia-smi -L and the driver / clocks;
#   2. nvcc (sm_90 by default; QLORAD_CUDA_ARCH=80 for an A100) builds the kernels and
#      tests/kernels/cuda_check/cuda_check_shim.cu into one shared library (-Xptxas -v:
#      registers and spills in the log);
#   3. tests/kernels/cuda_check/check_cuda_kernels.py: dequant (bit-equal), gemv and
#      SGMV against float64 references, argument errors, timings;
#   4. compute-sanitizer memcheck over the same script's --small cases (exact-size
#      allocations: PYTORCH_NO_CUDA_MEMORY_CACHING=1), when compute-sanitizer exists.
#
# Everything is logged to $OUT/gpu-check.log ($OUT defaults to build/gpu-check); the
# summaries go to $OUT/cuda_check.json and $OUT/cuda_check_small.json. Exit status 0
# only when every step passed. Expected wall time: well under 5 minutes.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/build/gpu-check}
mkdir -p "$OUT"
ARCH=${QLORAD_CUDA_ARCH:-90}
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qlorad-gpu-check.XXXXXX")
LIB=$WORK/libqlorad_cuda_check.so
CHECK=$ROOT/tests/kernels/cuda_check/check_cuda_kernels.py
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
begin=$(date +%s)
step() { echo; echo "=== [$(($(date +%s) - begin)) s] $*"; }

find_tool() {  # name, candidates...: the first executable one
  local name=$1; shift
  for c in "$@" "$(command -v "$name" 2>/dev/null)" "/usr/local/cuda/bin/$name" \
           $(find /usr/local -maxdepth 3 -path "/usr/local/cuda-*/bin/$name" 2>/dev/null | sort -rV); do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

main() {
local failed=()
step "device"
date -u
nvidia-smi -L || failed+=(nvidia-smi)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv || true
echo "python: $(command -v "$PY")"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available())' || failed+=(python-torch)

step "build the kernels + shim (sm_$ARCH)"
NVCC=$(find_tool nvcc "${CUDACXX:-}") ||
  NVCC=$(find_tool nvcc "$(find /usr /opt -maxdepth 7 -name nvcc -type f 2>/dev/null | head -1)") ||
  { echo "nvcc not found"; failed+=(nvcc); }
if [ -n "${NVCC:-}" ]; then
  "$NVCC" --version | tail -2
  # Warnings are shown, not fatal: this one-shot check must not die on a newer nvcc's
  # new warning (the CMake build keeps --Werror=all-warnings).
  flags=(-std=c++17 -O3 "-arch=sm_$ARCH" -lineinfo -Xcompiler "-fPIC,-Wall,-Wextra"
         -Xptxas -v -I"$ROOT")
  pids=()
  for src in "$ROOT"/kernels/cuda/dequant4bit.cu "$ROOT"/kernels/cuda/gemv4bit.cu \
             "$ROOT"/kernels/cuda/sgmv.cu "$ROOT"/tests/kernels/cuda_check/cuda_check_shim.cu; do
    timeout 240 "$NVCC" "${flags[@]}" -c "$src" -o "$WORK/$(basename "$src" .cu).o" &
    pids+=($!)
  done
  ok=1
  for p in "${pids[@]}"; do wait "$p" || ok=0; done
  if [ $ok = 1 ] && "$NVCC" -shared "-arch=sm_$ARCH" "$WORK"/*.o -o "$LIB"; then
    ls -l "$LIB"
  else
    failed+=(compile)
  fi
fi

if [ -f "$LIB" ]; then
  step "check_cuda_kernels.py (full cases + timings)"
  timeout 270 "$PY" "$CHECK" --lib "$LIB" --out "$OUT" || failed+=("check($?)")

  step "compute-sanitizer memcheck (--small cases)"
  SAN=$(find_tool compute-sanitizer ${NVCC:+$(dirname "$NVCC")/compute-sanitizer} \
        /usr/local/cuda/compute-sanitizer/compute-sanitizer)
  if [ -n "$SAN" ]; then
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 180 "$SAN" --tool memcheck --error-exitcode 86 \
      --print-limit 20 "$PY" "$CHECK" --lib "$LIB" --small --quiet --out "$OUT" || failed+=("memcheck($?)")
  else
    echo "compute-sanitizer not found: memcheck skipped"
  fi
fi

step "done"
rm -rf "$WORK"
if [ ${#failed[@]} -eq 0 ]; then
  echo "gpu-check: PASS"
  return 0
fi
echo "gpu-check: FAIL: ${failed[*]}"
return 1
}

main 2>&1 | tee "$OUT/gpu-check.log"
exit "${PIPESTATUS[0]}"
