// Streaming validation of a dataset: counts, exact and normalised duplicates, empty
// fields, token-length distribution, label distribution, format adherence, over-length
// examples and the size thresholds from practice.
//
// Size rules (usable = kept examples: not an exact duplicate, no empty required field):
//   usable < 200         -> refused (ValidationReport::refused) unless the caller passes an
//                           explicit override, which the manifest records
//   200 <= usable < 300  -> warning "small"
//   regime: "too_small" (<200), "small" (200-299), "narrow" (300-800), "between" (801-999),
//           "broad" (>= 1000): narrow tasks want 300-800 precise examples, broad ones >= 1000.
#ifndef QLORAD_CORE_DATA_VALIDATION_H_
#define QLORAD_CORE_DATA_VALIDATION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "core/data/example.h"
#include "nlohmann/json.hpp"

namespace qlorad::data {

// Counts tokens of a text. Inject the model's tokenizer here (e.g. a lambda around
// Tokenizer::Encode(text).size()); `name` is recorded in the report.
struct TokenCounter {
  std::string name;
  std::function<size_t(std::string_view)> count;
};

// The default when no tokenizer is given: an ESTIMATE, max(whitespace-separated words,
// ceil(bytes / 4)); the report labels it "estimate:max(words,bytes/4)".
TokenCounter EstimateTokenCounter();

struct ValidationOptions {
  TokenCounter token_counter = EstimateTokenCounter();
  size_t max_seq_len = 2048;                    // tokens; longer examples are listed as over-length
  std::vector<std::string> label_set;           // if set: every target (trimmed) must be one of these
  std::string target_regex;                     // if set: every target must fully match (PCRE2, UTF)
  std::optional<nlohmann::json> json_template;  // if set: every target must be JSON with these keys/types
  size_t max_listed = 20;                       // line numbers listed per finding
  size_t min_usable = 200, warn_below = 300, narrow_max = 800, broad_min = 1000;

  nlohmann::json ToJson() const;
};

struct ValidationReport {
  struct Finding {
    uint64_t count = 0;
    std::vector<int64_t> lines;  // first max_listed source lines
  };
  uint64_t examples = 0;  // read (after label resolution)
  uint64_t usable = 0;
  Finding exact_duplicates;                      // dropped (the first occurrence is kept)
  Finding normalized_duplicates;                 // same after whitespace/case normalisation but not exact; kept
  Finding empty_required;                        // dropped
  std::map<std::string, uint64_t> empty_fields;  // per field name, incl. optional fields
  std::string token_counter;
  struct Lengths {
    uint64_t min = 0, max = 0, p50 = 0, p90 = 0, p99 = 0, total = 0;
    double mean = 0;
  } tokens;
  std::map<std::string, uint64_t> label_distribution;  // classification labels (usable examples)
  bool adherence_checked = false;
  Finding label_set_violations, regex_violations, template_violations;
  Finding over_length;
  std::string regime;
  std::vector<std::string> warnings;
  bool refused = false;
  std::string refusal;

  nlohmann::json ToJson() const;
};

class Validator {
 public:
  enum class Verdict { kKeep, kExactDuplicate, kEmptyRequired };

  // INVALID_ARGUMENT if the regex does not compile or the template is not a JSON object.
  static absl::StatusOr<std::unique_ptr<Validator>> Create(const ValidationOptions& options);
  ~Validator();

  // Checks one example (already anonymised: what will be stored) and says whether to keep it.
  Verdict Add(const Example& example);
  // Finishes the report (percentiles, regime, refusal).
  ValidationReport Finish();

  // Template check, exposed for tests: `value` has every key of `templ` with the same JSON
  // type (numbers match numbers; null in the template matches anything), recursively.
  static bool MatchesTemplate(const nlohmann::json& value, const nlohmann::json& templ);

 private:
  explicit Validator(const ValidationOptions& options);
  void Note(ValidationReport::Finding* finding, int64_t line) const;

  ValidationOptions options_;
  struct Regex;
  std::unique_ptr<Regex> regex_;
  ValidationReport report_;
  absl::flat_hash_set<uint64_t> exact_, normalized_;
  std::vector<uint32_t> lengths_;
};

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_VALIDATION_H_
