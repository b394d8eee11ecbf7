#include "core/data/holdout_reader.h"

namespace qlorad::data {

absl::StatusOr<std::unique_ptr<SplitReader>> HoldoutReader::Open(const DatasetStore& store,
                                                                 const std::string& dataset_id, HoldoutKey key) {
  (void)key;  // possession is the capability
  return store.OpenSplit(dataset_id, "holdout");
}

}  // namespace qlorad::data
