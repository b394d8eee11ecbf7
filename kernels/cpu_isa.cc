// CPU feature detection for the kernels (cpu_isa.h).
#include "kernels/cpu_isa.h"

#include <strings.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace qlorad::kernels {
namespace {

std::atomic<uint8_t> g_testing_cap{static_cast<uint8_t>(CpuIsa::kAvx512)};

CpuIsa EnvironmentCap() {
  const char* env = std::getenv("QLORAD_KERNELS_MAX_ISA");
  if (env == nullptr || env[0] == '\0') return CpuIsa::kAvx512;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (strcasecmp(env, CpuIsaName(isa)) == 0) return isa;
  }
  std::fprintf(stderr,
               "qlorad kernels: ignoring QLORAD_KERNELS_MAX_ISA=%s "
               "(expected scalar, avx2 or avx512)\n",
               env);
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

bool Avx512VnniSupported() {
  static const bool supported = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
  }();
  return supported;
}

CpuIsa ActiveIsa() {
  const auto cap = static_cast<CpuIsa>(g_testing_cap.load(std::memory_order_relaxed));
  return std::min(DetectedIsa(), cap);
}

CpuIsa LimitIsaForTesting(CpuIsa max) {
  const uint8_t previous =
      g_testing_cap.exchange(static_cast<uint8_t>(max), std::memory_order_relaxed);
  return static_cast<CpuIsa>(previous);
}

}  // namespace qlorad::kernels
