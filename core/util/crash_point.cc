#include "core/util/crash_point.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace qlorad {
namespace {

constexpr char kCrashAtVar[] = "QLORAD_TEST_CRASH_AT";
constexpr char kTraceVar[] = "QLORAD_TEST_CRASH_TRACE";

[[noreturn]] void Fatal(const std::string& message) {
  std::fprintf(stderr, "qlorad crash point: %s\n", message.c_str());
  std::abort();
}

// The process-wide configuration, built from the environment on first use.
struct Config {
  bool active = false;  // a crash spec or a trace is set
  bool crash = false;
  CrashSpec spec;
  int trace_fd = -1;
  std::mutex mu;              // orders hits and trace lines
  int64_t total_hits = 0;     // all points
  int64_t matching_hits = 0;  // hits of spec.point (all points when "*")
};

Config& GetConfig() {
  static Config* config = [] {
    auto* c = new Config;  // never destroyed: points may be hit during exit
    if (const char* at = std::getenv(kCrashAtVar); at != nullptr && *at != '\0') {
      absl::StatusOr<CrashSpec> spec = ParseCrashSpec(at);
      if (!spec.ok()) Fatal(std::string(spec.status().message()));
      c->spec = *std::move(spec);
      c->crash = true;
    }
    if (const char* trace = std::getenv(kTraceVar); trace != nullptr && *trace != '\0') {
      c->trace_fd = ::open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (c->trace_fd < 0) Fatal(absl::StrCat(kTraceVar, ": cannot open '", trace, "' for appending"));
    }
    c->active = c->crash || c->trace_fd >= 0;
    return c;
  }();
  return *config;
}

std::atomic<int> g_state{0};  // 0 = not read yet, 1 = inert, 2 = active

}  // namespace

absl::StatusOr<CrashSpec> ParseCrashSpec(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(kCrashAtVar, "='", text,
                                                   "': expected <point>:<n>, e.g. store.commit:7 or *:7"));
  }
  CrashSpec spec;
  spec.point = text.substr(0, colon);
  if (spec.point.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kCrashAtVar, "='", text, "': the point name is empty (use * for any)"));
  }
  if (!absl::SimpleAtoi(text.substr(colon + 1), &spec.hit) || spec.hit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kCrashAtVar, "='", text, "': the hit number after ':' must be an integer >= 1"));
  }
  return spec;
}

void CrashPoint(const char* name) {
  int state = g_state.load(std::memory_order_relaxed);
  if (state == 1) return;
  if (state == 0) {
    state = GetConfig().active ? 2 : 1;
    g_state.store(state, std::memory_order_relaxed);
    if (state == 1) return;
  }
  Config& c = GetConfig();
  std::lock_guard<std::mutex> lock(c.mu);
  ++c.total_hits;
  if (c.trace_fd >= 0) {
    const std::string line = absl::StrCat(c.total_hits, " ", name, "\n");
    (void)!::write(c.trace_fd, line.data(), line.size());
  }
  if (!c.crash) return;
  if (c.spec.point != "*" && c.spec.point != name) return;
  if (++c.matching_hits == c.spec.hit) std::raise(SIGKILL);
}

}  // namespace qlorad
