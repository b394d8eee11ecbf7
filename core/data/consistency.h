// Label consistency for classification data.
//
// Two annotators (label_a/label_b): percent agreement and Cohen's kappa over every example
// that has both, a list of disagreements, and their resolution. A disagreement is resolved
// by a resolution column ("resolution", or "label" next to label_a/label_b) or by the policy;
// with DisagreementPolicy::kRefuse (the default) any unresolved disagreement makes
// CheckResolved() fail, so nothing is trained on contested labels by accident.
//
// Near-duplicates: texts equal after NormalizeNearDuplicate (case, whitespace and ASCII
// punctuation ignored) but carrying different labels are flagged (reported, not dropped).
#ifndef QLORAD_CORE_DATA_CONSISTENCY_H_
#define QLORAD_CORE_DATA_CONSISTENCY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/data/example.h"
#include "nlohmann/json.hpp"

namespace qlorad::data {

enum class DisagreementPolicy { kRefuse, kPreferA, kPreferB, kDrop };
std::string_view PolicyName(DisagreementPolicy policy);  // "refuse", "prefer_a", "prefer_b", "drop"
absl::StatusOr<DisagreementPolicy> ParsePolicyName(std::string_view name);

struct ConsistencyReport {
  struct Disagreement {
    int64_t line;
    std::string label_a, label_b;
    std::string outcome;  // "column:<label>", "policy:<label>", "dropped", "unresolved"
  };
  uint64_t annotated = 0;  // examples with both label_a and label_b
  uint64_t agreements = 0;
  double percent_agreement = 0;  // 100 * agreements / annotated
  std::optional<double> kappa;   // undefined (nullopt) when expected agreement is 1
  uint64_t disagreements = 0, resolved_by_column = 0, resolved_by_policy = 0, dropped = 0, unresolved = 0;
  std::vector<Disagreement> listed;  // first max_listed
  struct NearDuplicateConflict {
    int64_t first_line, line;
    std::string first_label, label;
  };
  uint64_t near_duplicate_conflicts = 0;
  std::vector<NearDuplicateConflict> near_duplicates_listed;

  nlohmann::json ToJson() const;
};

// Cohen's kappa of paired labels: (p_o - p_e) / (1 - p_e); nullopt if p_e == 1 or no pairs.
std::optional<double> CohenKappa(const std::vector<std::pair<std::string, std::string>>& pairs);

class ConsistencyChecker {
 public:
  explicit ConsistencyChecker(DisagreementPolicy policy, size_t max_listed = 50)
      : policy_(policy), max_listed_(max_listed) {}

  // For a classification example: records the annotator pair and fixes example->label by the
  // resolution column or policy. Returns false if the example is to be dropped (kDrop).
  bool Resolve(Example* example);
  // Tracks near-duplicate texts with different labels (call for kept examples).
  void AddNearDuplicateKey(uint64_t near_key, const Example& example);

  ConsistencyReport Finish() const;
  // FAILED_PRECONDITION listing unresolved disagreements (with lines) if there are any.
  absl::Status CheckResolved(const std::string& path) const;

 private:
  DisagreementPolicy policy_;
  size_t max_listed_;
  ConsistencyReport report_;
  std::map<std::string, uint64_t> count_a_, count_b_;
  struct Seen {
    int64_t line;
    std::string label;
    bool flagged = false;
  };
  absl::flat_hash_map<uint64_t, Seen> seen_;
};

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_CONSISTENCY_H_
