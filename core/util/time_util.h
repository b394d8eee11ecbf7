// UTC timestamps as qlorad records them (RFC 3339, "Z" suffix): run records, job and
// audit rows, evaluation records.
#ifndef QLORAD_CORE_UTIL_TIME_UTIL_H_
#define QLORAD_CORE_UTIL_TIME_UTIL_H_

#include <string>

#include "absl/time/time.h"

namespace qlorad {

enum class TimePrecision { kSeconds, kMilliseconds };

// "2026-01-02T03:04:05Z", or with kMilliseconds "2026-01-02T03:04:05.678Z" (truncated).
std::string FormatUtcRfc3339(absl::Time time, TimePrecision precision = TimePrecision::kSeconds);
// FormatUtcRfc3339 of the current time.
std::string NowUtcRfc3339(TimePrecision precision = TimePrecision::kSeconds);

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_TIME_UTIL_H_
