// Human review of evaluations (tables review_samples, evaluation_reviews; see
// daemon_migrations.h): the exported sample of an evaluation (with its blind key; a new
// export replaces it and resets the interactive review's judgements, judgement_repository.h)
// and the append-only review summaries imported or submitted for it. The JSON is
// core/eval's format (review.h); the store does not interpret it. Thread-safe.
#ifndef QLORAD_CORE_STORE_REVIEW_REPOSITORY_H_
#define QLORAD_CORE_STORE_REVIEW_REPOSITORY_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/store/shared_store.h"
#include "nlohmann/json.hpp"

namespace qlorad::store {

class ReviewRepository {
 public:
  // `db` must have DaemonDatabaseMigrations() applied and outlive this object.
  explicit ReviewRepository(SharedStore* db) : db_(db) {}

  // Stores the sample; a re-export also drops the interactive judgements and submissions
  // made against the previous sample (one transaction).
  absl::Status PutSample(const std::string& evaluation_id, const nlohmann::json& sample, const std::string& at);
  // NOT_FOUND (with a hint) when no sample was exported for the evaluation.
  absl::StatusOr<nlohmann::json> GetSample(const std::string& evaluation_id);
  absl::Status AddReview(const std::string& evaluation_id, const nlohmann::json& summary, const std::string& at);
  // The newest imported summary, or nullopt.
  absl::StatusOr<std::optional<nlohmann::json>> LatestReview(const std::string& evaluation_id);

  // The same reads and writes on a Store the caller holds (inside its transaction).
  static absl::StatusOr<nlohmann::json> GetSampleIn(Store& s, const std::string& evaluation_id);
  static absl::Status AddReviewIn(Store& s, const std::string& evaluation_id, const nlohmann::json& summary,
                                  const std::string& at);

 private:
  SharedStore* db_;
};

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_REVIEW_REPOSITORY_H_
