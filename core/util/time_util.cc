#include "core/util/time_util.h"

#include "absl/time/clock.h"

namespace qlorad {

std::string FormatUtcRfc3339(absl::Time time, TimePrecision precision) {
  const char* format = precision == TimePrecision::kMilliseconds ? "%Y-%m-%dT%H:%M:%E3SZ" : "%Y-%m-%dT%H:%M:%SZ";
  return absl::FormatTime(format, time, absl::UTCTimeZone());
}

std::string NowUtcRfc3339(TimePrecision precision) { return FormatUtcRfc3339(absl::Now(), precision); }

}  // namespace qlorad
