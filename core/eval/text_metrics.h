// Per-example text metrics for generation/extraction tasks.
//
// SQuAD normalisation (the official SQuAD v1.1/v2.0 evaluate script's
// normalize_answer): lowercase (ASCII), remove ASCII punctuation (Python's
// string.punctuation: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~), remove the articles
// "a", "an", "the" as whole words, collapse whitespace.
//  * ExactMatch: normalised prediction == normalised reference (1.0 or 0.0).
//  * StrictExactMatch: byte-equal after trimming surrounding ASCII whitespace.
//  * TokenF1: bag-of-tokens F1 over the normalised whitespace tokens (SQuAD v2.0's
//    compute_f1): if either side has no tokens, 1.0 when both are empty else 0.0;
//    otherwise common = multiset intersection, P = common/|pred|, R = common/|ref|,
//    F1 = 2PR/(P+R) (0 when common = 0).
//  * Format adherence: the output matches a PCRE2 pattern in full (anchored at both
//    ends, UTF mode), or parses as JSON (optionally: must be a JSON object).
#ifndef QLORAD_CORE_EVAL_TEXT_METRICS_H_
#define QLORAD_CORE_EVAL_TEXT_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qlorad::eval {

std::string SquadNormalize(const std::string& text);
std::vector<std::string> SquadTokens(const std::string& text);

double ExactMatch(const std::string& prediction, const std::string& reference);
double StrictExactMatch(const std::string& prediction, const std::string& reference);
double TokenF1(const std::string& prediction, const std::string& reference);

// A compiled format check. Thread-compatible: Matches() is const and allocates its
// own match data.
class FormatChecker {
 public:
  enum class Kind { kRegex, kJson, kJsonObject };
  // INVALID_ARGUMENT naming the pattern and the PCRE2 error offset when it does not compile.
  static absl::StatusOr<std::unique_ptr<FormatChecker>> CreateRegex(const std::string& pattern);
  static std::unique_ptr<FormatChecker> CreateJson(bool require_object);
  ~FormatChecker();
  FormatChecker(const FormatChecker&) = delete;
  FormatChecker& operator=(const FormatChecker&) = delete;

  bool Matches(const std::string& output) const;
  Kind kind() const { return kind_; }
  const std::string& description() const { return description_; }

 private:
  FormatChecker(Kind kind, std::string description, void* code);
  Kind kind_;
  std::string description_;
  void* code_;  // pcre2_code_8* for kRegex
};

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_TEXT_METRICS_H_
