// The hold-out split of a dataset as evaluation items (the "evaluate" step's input):
// classification (text -> label), prompt_completion and Alpaca (prompt [+ input] ->
// reference), and preference pairs as a two-label classification: a system "answers"
// chosen or rejected by which completion it gives the higher log-likelihood, the
// reference is always "chosen", so accuracy = how often it prefers the chosen one. Chat
// datasets are not evaluated yet (FAILED_PRECONDITION), nor is an empty hold-out. Item ids are "holdout-line-N" (the line in the hold-out file).
#ifndef QLORAD_CORE_EVAL_HOLDOUT_H_
#define QLORAD_CORE_EVAL_HOLDOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset_store.h"
#include "core/eval/evaluation_record.h"

namespace qlorad::eval {

inline constexpr char kPreferredLabel[] = "chosen";
inline constexpr char kDispreferredLabel[] = "rejected";

struct HoldoutItems {
  TaskKind task = TaskKind::kClassification;
  std::vector<std::string> ids, prompts, inputs, references;
  bool preference = false;  // prompts + chosen / rejected; references "chosen"; inputs show both (for reviewers)
  std::vector<std::string> chosen, rejected;   // preference only
};

// The first `max_examples` hold-out items (<= 0: all).
absl::StatusOr<HoldoutItems> ReadHoldout(const data::DatasetStore& datasets, const std::string& dataset_id,
                                         int64_t max_examples);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_HOLDOUT_H_
