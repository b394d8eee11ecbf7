#include "core/serve/stop_strings.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace qlorad::serve {

absl::Status ValidateStopStrings(const std::vector<std::string>& stops, const char* field) {
  if (stops.size() > kMaxStopStrings)
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", kMaxStopStrings, " stop strings, got ", stops.size()));
  for (const auto& s : stops)
    if (s.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": stop strings must not be empty"));
  return absl::OkStatus();
}

std::string StopStringFilter::Push(const std::string& piece, bool* stopped) {
  held_ += piece;
  *stopped = false;
  if (stops_.empty()) return Flush();
  size_t first = std::string::npos;
  for (const auto& stop : stops_) first = std::min(first, held_.find(stop));
  if (first != std::string::npos) {
    *stopped = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Keep the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& stop : stops_)
    for (size_t n = std::min(stop.size() - 1, held_.size()); n > keep; --n)
      if (held_.compare(held_.size() - n, n, stop, 0, n) == 0) {
        keep = n;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringFilter::Flush() {
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace qlorad::serve
