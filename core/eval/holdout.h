// The hold-out split of a dataset as evaluation items (the "evaluate" step's input):
// classification (text -> label), prompt_completion and Alpaca (prompt [+ input] ->
// reference); chat datasets are not evaluated yet (FAILED_PRECONDITION), nor is an empty
// hold-out. Item ids are "holdout-line-N" (the line in the hold-out file).
#ifndef QLORAD_CORE_EVAL_HOLDOUT_H_
#define QLORAD_CORE_EVAL_HOLDOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset_store.h"
#include "core/eval/evaluation_record.h"

namespace qlorad::eval {

struct HoldoutItems {
  TaskKind task = TaskKind::kClassification;
  std::vector<std::string> ids, prompts, inputs, references;
};

// The first `max_examples` hold-out items (<= 0: all).
absl::StatusOr<HoldoutItems> ReadHoldout(const data::DatasetStore& datasets, const std::string& dataset_id,
                                         int64_t max_examples);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_HOLDOUT_H_
