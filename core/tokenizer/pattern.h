// The {"String": s} / {"Regex": r} patterns of tokenizer.json, shared by the
// Split pre-tokenizer, the Replace normalizer and the Replace decoder.
#ifndef QLORAD_CORE_TOKENIZER_PATTERN_H_
#define QLORAD_CORE_TOKENIZER_PATTERN_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/regex.h"
#include <nlohmann/json_fwd.hpp>

namespace qlorad::tokenizer {

class Pattern {
 public:
  static absl::StatusOr<Pattern> FromJson(const nlohmann::json& json, const std::string& where);
  static Pattern Literal(std::string literal);

  // Non-overlapping leftmost matches as [begin, end) byte offsets.
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;
  // Replaces every (non-empty) match by `content`.
  std::string ReplaceAll(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;  // set for {"Regex": ...}
};

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_PATTERN_H_
