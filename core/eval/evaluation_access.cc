#include "core/eval/evaluation_access.h"

#include "core/data/holdout_reader.h"

namespace qlorad::eval {

absl::StatusOr<std::unique_ptr<data::SplitReader>> EvaluationAccess::OpenHoldout(const data::DatasetStore& store,
                                                                                 const std::string& dataset_id) {
  return data::HoldoutReader::Open(store, dataset_id, data::HoldoutKey());
}

}  // namespace qlorad::eval
