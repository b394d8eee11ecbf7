// A compiled PCRE2 pattern (UTF + UCP, JIT when available) used for the
// pre-tokenizer split patterns and regex normalizers/decoders of tokenizer.json.
// Thread-safe: matching allocates per-call match data, the code is immutable.
#ifndef QLORAD_CORE_TOKENIZER_REGEX_H_
#define QLORAD_CORE_TOKENIZER_REGEX_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace qlorad::tokenizer {

class Regex {
 public:
  // INVALID_ARGUMENT naming the pattern and PCRE2's message (with offset) if it does not compile.
  static absl::StatusOr<std::unique_ptr<Regex>> Create(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All non-overlapping leftmost matches as [begin, end) byte offsets, like
  // Rust/Oniguruma find_iter: an empty match advances by one UTF-8 character.
  // `text` must be valid UTF-8 (callers sanitize input first).
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  struct Impl;
  std::string pattern_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_REGEX_H_
