#include "core/util/cpu_runtime.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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

// The running binary's path, so that the re-executed process keeps its name (comm) instead
// of "exe"; /proc/self/exe itself when the path cannot be read or the file was replaced.
std::string OwnExecutable() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return "/proc/self/exe";
  const std::string resolved(path, static_cast<size_t>(n));
  constexpr char kDeleted[] = " (deleted)";
  const bool deleted = resolved.size() >= sizeof(kDeleted) - 1 &&
                       resolved.compare(resolved.size() - (sizeof(kDeleted) - 1), std::string::npos, kDeleted) == 0;
  return deleted ? "/proc/self/exe" : resolved;
}

void QuietIdleThreads(char** argv) {
  if (argv == nullptr || argv[0] == nullptr || std::getenv(kMarker) != nullptr) return;
  std::vector<const char*> set_here;
  for (const Setting& s : kQuietThreads) {
    if (std::getenv(s.name) != nullptr) continue;
    setenv(s.name, s.value, /*overwrite=*/0);
    set_here.push_back(s.name);
  }
  setenv(kMarker, "applied", /*overwrite=*/0);
  if (set_here.empty()) return;
  execv(OwnExecutable().c_str(), argv);
  // Still here: the libraries keep the settings they read at load, so neither the log nor
  // child processes may see values that are not in effect.
  const int error = errno;
  for (const char* name : set_here) unsetenv(name);
  setenv(kMarker, "exec-failed", /*overwrite=*/1);
  std::fprintf(stderr, "qlorad: could not re-execute to apply OMP_WAIT_POLICY/OPENBLAS_THREAD_TIMEOUT (%s); "
               "idle threads keep spinning\n", std::strerror(error));
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
