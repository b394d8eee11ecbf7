// Stop strings for streamed generation (OpenAI's `stop`): decoded text is held
// back while it could still be the start of a stop string, so a stop string is
// never emitted, not even in part, and generation ends right before it.
#ifndef QLORAD_CORE_SERVE_STOP_STRINGS_H_
#define QLORAD_CORE_SERVE_STOP_STRINGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace qlorad::serve {

inline constexpr size_t kMaxStopStrings = 4;  // as OpenAI's API

// INVALID_ARGUMENT naming `field` for more than kMaxStopStrings or an empty string.
absl::Status ValidateStopStrings(const std::vector<std::string>& stops, const char* field = "stop");

class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Adds decoded text; returns what is now safe to emit. On a stop string,
  // returns the text before it, drops the rest and sets *stopped.
  std::string Push(const std::string& piece, bool* stopped);
  // The text still held back (generation ended without a stop string).
  std::string Flush();

 private:
  std::vector<std::string> stops_;
  std::string held_;
};

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_STOP_STRINGS_H_
