// CPU feature detection for the kernels (cpu_isa.h).
#include "kernels/cpu_isa.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace qlorad::kernels {
namespace {

std::atomic<uint8_t> g_testing_cap{static_cast<uint8_t>(CpuIsa::kAvx512)};

CpuIsa EnvironmentCap() {
  const char* env = std::getenv("QLORAD_KERNELS_MAX_ISA");
  if (env == nullptr || env[0] == '\0') return CpuIsa::kAvx512;
  if (std::strcmp(env, "scalar") == 0) return CpuIsa::kScalar;
  if (std::strcmp(env, "avx2") == 0) return CpuIsa::kAvx2;
  return CpuIsa::kAvx512;
}

CpuIsa CpuSupport() {
  __builtin_cpu_init();
  // GCC's checks include the OS's XSAVE support of the wider registers.
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return CpuIsa::kScalar;
  if (!__builtin_cpu_supports("avx512f")) return CpuIsa::kAvx2;
  return CpuIsa::kAvx512;
}

}  // namespace

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
  }
  return "unknown";
}

CpuIsa DetectedIsa() {
  static const CpuIsa detected = std::min(CpuSupport(), EnvironmentCap());
  return detected;
}

CpuIsa ActiveIsa() {
  const auto cap = static_cast<CpuIsa>(g_testing_cap.load(std::memory_order_relaxed));
  return std::min(DetectedIsa(), cap);
}

void LimitIsaForTesting(CpuIsa max) {
  g_testing_cap.store(static_cast<uint8_t>(max), std::memory_order_relaxed);
}

}  // namespace qlorad::kernels
