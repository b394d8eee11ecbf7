// InteractiveReview: the review console's work on an evaluation's exported review sample
// (ServiceCore::ListReviewQueue/GetReviewSession/SaveJudgement/SubmitReview/AuditTrail;
// the same calls over gRPC and HTTP). Judgements are stored per (evaluation, reviewer,
// item) de-blinded (core/store/judgement_repository.h) and re-blinded for display with
// the sample's stored key; a reviewer's submission, the recomputed review summary (every
// submitted reviewer's judgements through core/eval's SummariseReview: mean ratings,
// preferences, Cohen's kappa, the adapter's win rate with its Wilson interval) and the
// audit entry "review.submit" commit in ONE transaction. Saving is not audited (the
// judgements themselves are stored; the submission is). The reviewer is the
// authenticated principal's name, never a request field. Thread-safe (SharedStore).
#ifndef QLORAD_CORE_SERVICE_INTERACTIVE_REVIEW_H_
#define QLORAD_CORE_SERVICE_INTERACTIVE_REVIEW_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/service/service_core.h"
#include "core/store/shared_store.h"
#include "nlohmann/json.hpp"

namespace qlorad::service {

class InteractiveReview {
 public:
  using Clock = std::function<std::string()>;  // RFC 3339 UTC
  // `db` must have DaemonDatabaseMigrations() applied and outlive this object.
  InteractiveReview(store::SharedStore* db, Clock now) : db_(db), now_(std::move(now)) {}

  // Evaluations with an exported sample, newest first, with `reviewer`'s progress.
  absl::StatusOr<std::vector<ReviewQueueEntry>> Queue(const std::string& reviewer);
  // NOT_FOUND when the evaluation has no exported sample.
  absl::StatusOr<ReviewSessionInfo> Session(const std::string& evaluation_id, const std::string& reviewer);
  // INVALID_ARGUMENT naming the field (item_id, rating_a, rating_b, preference, comment),
  // NOT_FOUND for an item outside the sample, FAILED_PRECONDITION after submission.
  absl::Status Save(const std::string& evaluation_id, const std::string& reviewer, const ItemJudgement& judgement);
  // FAILED_PRECONDITION naming how many items are unrated (or when already submitted);
  // returns the new summary (eval::ReviewSummaryToJson).
  absl::StatusOr<nlohmann::json> Submit(const std::string& evaluation_id, const std::string& reviewer);
  // Audit entries of "type:id", oldest first (INVALID_ARGUMENT naming `subject` otherwise).
  absl::StatusOr<std::vector<nlohmann::json>> AuditTrail(const std::string& subject);

 private:
  store::SharedStore* db_;
  Clock now_;
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_INTERACTIVE_REVIEW_H_
