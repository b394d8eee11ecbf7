// The evaluation module's hold-out capability (see core/data/holdout_reader.h): the
// only class that can mint a data::HoldoutKey. Evaluation code opens a dataset's
// hold-out split through it; nothing else in qlorad can.
#ifndef QLORAD_CORE_EVAL_EVALUATION_ACCESS_H_
#define QLORAD_CORE_EVAL_EVALUATION_ACCESS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/data/dataset_store.h"

namespace qlorad::eval {

class EvaluationAccess {
 public:
  // The hold-out split of `dataset_id` (checksum verified by the data module).
  static absl::StatusOr<std::unique_ptr<data::SplitReader>> OpenHoldout(const data::DatasetStore& store,
                                                                        const std::string& dataset_id);
};

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_EVALUATION_ACCESS_H_
