#include "core/service/ids.h"

#include <atomic>
#include <cstdint>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/util/time_util.h"

namespace qlorad::service {

std::string Now() {
  return NowUtcRfc3339(TimePrecision::kMilliseconds);
}

std::string NewId(const std::string& prefix) {
  static std::atomic<uint64_t> id_counter{0};
  return absl::StrFormat("%s-%s-%04x", prefix, absl::FormatTime("%Y%m%d%H%M%S", absl::Now(), absl::UTCTimeZone()),
                         static_cast<unsigned>((absl::ToUnixMicros(absl::Now()) + id_counter++) & 0xffff));
}

}  // namespace qlorad::service
