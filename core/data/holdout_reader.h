// Hold-out access for evaluation code only — enforced by the type system, not by convention.
//
// Mechanism (a "passkey"):
//   * DatasetStore (the trainer-facing API) exposes OpenTrain(id) and nothing that opens or
//     locates the hold-out split; its private OpenSplit() is reachable only by HoldoutReader.
//   * HoldoutReader::Open() requires a HoldoutKey argument.
//   * HoldoutKey's only constructor is private and user-provided (so `HoldoutKey{}`
//     aggregate-initialisation does not work either); its single friend is
//     `qlorad::eval::EvaluationAccess`, a class core/data only declares. The evaluation module
//     (core/eval) defines it and hands out hold-out readers from it; no other module can mint
//     a key, so code that does not belong to evaluation cannot even call HoldoutReader::Open.
//   * tests/core/data/holdout_access_test.cc additionally fails the build's test run if
//     `class EvaluationAccess` is defined anywhere outside core/eval/ (and that test itself),
//     so the friend name cannot quietly be borrowed by, say, core/train.
#ifndef QLORAD_CORE_DATA_HOLDOUT_READER_H_
#define QLORAD_CORE_DATA_HOLDOUT_READER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/data/dataset_store.h"

namespace qlorad::eval {
class EvaluationAccess;  // defined by the evaluation module only
}  // namespace qlorad::eval

namespace qlorad::data {

class HoldoutKey {
 public:
  HoldoutKey(const HoldoutKey&) = default;

 private:
  HoldoutKey() {}  // user-provided: no aggregate initialisation loophole
  friend class ::qlorad::eval::EvaluationAccess;
};

class HoldoutReader {
 public:
  // Opens the hold-out split of `dataset_id` (SHA-256 checked against the manifest).
  static absl::StatusOr<std::unique_ptr<SplitReader>> Open(const DatasetStore& store, const std::string& dataset_id,
                                                           HoldoutKey key);
};

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_HOLDOUT_READER_H_
