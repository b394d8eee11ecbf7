#include "core/util/cpu_runtime.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace qlorad {
namespace {

constexpr int kMmapThresholdBytes = 64 << 20;
constexpr int kTrimThresholdBytes = 256 << 20;

// Set by the first run, so the re-executed program does not re-execute again.
constexpr char kMarker[] = "QLORAD_CPU_RUNTIME";

struct Setting {
  const char* name;
  const char* value;
};
constexpr Setting kQuietThreads[] = {{"OMP_WAIT_POLICY", "passive"}, {"OPENBLAS_THREAD_TIMEOUT", "4"}};

void KeepLargeBlocksInTheHeap() {
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes);
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) mallopt(M_TRIM_THRESHOLD, kTrimThresholdBytes);
#endif
}

void QuietIdleThreads(char** argv) {
  if (argv == nullptr || argv[0] == nullptr || std::getenv(kMarker) != nullptr) return;
  bool changed = false;
  for (const Setting& s : kQuietThreads) {
    if (std::getenv(s.name) != nullptr) continue;
    setenv(s.name, s.value, /*overwrite=*/0);
    changed = true;
  }
  setenv(kMarker, "applied", /*overwrite=*/0);
  if (!changed) return;
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "qlorad: could not re-execute to apply OMP_WAIT_POLICY/OPENBLAS_THREAD_TIMEOUT (%s); "
               "idle threads keep spinning\n", std::strerror(errno));
}

}  // namespace

std::string BlasCoreName() {
  using CoreName = char* (*)();
  auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (core_name == nullptr) return "";
  const char* name = core_name();
  return name == nullptr ? "" : name;
}

std::string CpuRuntimeSummary() {
  std::string text;
  for (const Setting& s : kQuietThreads) {
    const char* value = std::getenv(s.name);
    text += std::string(text.empty() ? "" : " ") + s.name + "=" + (value != nullptr ? value : "(unset)");
  }
  const std::string blas = BlasCoreName();
  return text + (blas.empty() ? " (BLAS: not OpenBLAS)" : " (OpenBLAS " + blas + ")");
}

void ConfigureCpuRuntime(char** argv) {
  QuietIdleThreads(argv);
  KeepLargeBlocksInTheHeap();
}

}  // namespace qlorad
