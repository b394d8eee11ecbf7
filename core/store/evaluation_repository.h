// Stored evaluation records (table evaluation_records). The store keeps the record as
// JSON text plus the columns it is looked up by; it does not interpret the JSON
// (core/eval owns the format), so core/store stays independent of core/eval.
//
// A baseline record (adapter_id empty) is tied to its baseline key = hash of (base
// model fingerprint, hold-out checksum, settings): FindLatestBaseline(key) returns the
// newest one, so a baseline is computed once per triple and reused for every adapter.
// Records are immutable (UPDATE is refused by a trigger; Put of an existing id is
// ALREADY_EXISTS); a re-evaluation is a new record.
#ifndef QLORAD_CORE_STORE_EVALUATION_REPOSITORY_H_
#define QLORAD_CORE_STORE_EVALUATION_REPOSITORY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/store/store.h"

namespace qlorad::store {

struct StoredEvaluation {
  std::string id;
  std::string baseline_key;
  std::string adapter_id;  // empty: a baseline-only record
  std::string created_at;  // RFC 3339 UTC (sorts chronologically)
  std::string record_json;
};

class EvaluationRepository {
 public:
  explicit EvaluationRepository(Store* store) : store_(store) {}

  // INVALID_ARGUMENT for an empty id/baseline_key/created_at/record_json;
  // ALREADY_EXISTS when the id is taken.
  absl::Status Put(const StoredEvaluation& record);
  absl::StatusOr<StoredEvaluation> Get(const std::string& id);
  // The newest baseline-only record for the key, or nullopt.
  absl::StatusOr<std::optional<StoredEvaluation>> FindLatestBaseline(const std::string& baseline_key);
  // Every record of one adapter, oldest first.
  absl::StatusOr<std::vector<StoredEvaluation>> ListForAdapter(const std::string& adapter_id);

 private:
  Store* store_;
};

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_EVALUATION_REPOSITORY_H_
