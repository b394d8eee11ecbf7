// Interactive review's judgements (tables review_judgements, review_submissions; see
// daemon_migrations.h): one reviewer's judgement of one item of an evaluation's review
// sample, stored de-blinded (baseline/adapter ratings, preference baseline|adapter|tie),
// and each reviewer's submission. Works on a Store inside the caller's lock/transaction
// (like AuditLog) so that a save's check and write, or a submission with its summary and
// audit entry, commit together. Validation of ratings and item ids is the caller's; the
// store refuses a write after the reviewer submitted (FAILED_PRECONDITION).
#ifndef QLORAD_CORE_STORE_JUDGEMENT_REPOSITORY_H_
#define QLORAD_CORE_STORE_JUDGEMENT_REPOSITORY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/store/store.h"

namespace qlorad::store {

struct StoredJudgement {
  std::string evaluation_id, reviewer, item_id;
  int baseline_rating = 0, adapter_rating = 0;
  std::string preference;  // baseline | adapter | tie
  std::string comment, saved_at;
};

// An evaluation with an exported review sample (the queue's rows).
struct ReviewSampleRow {
  std::string evaluation_id, adapter_id, dataset_id, created_at;  // created_at: the evaluation's
  int64_t items = 0;
  bool blind = false;
};

class JudgementRepository {
 public:
  // `store` must have DaemonDatabaseMigrations() applied and outlive this object.
  explicit JudgementRepository(Store* store) : store_(store) {}

  // Inserts or replaces (evaluation, reviewer, item). FAILED_PRECONDITION once the
  // reviewer has submitted this evaluation.
  absl::Status Save(const StoredJudgement& judgement);
  // The judgements of one evaluation, of one reviewer when `reviewer` is not empty,
  // ordered by reviewer then item id.
  absl::StatusOr<std::vector<StoredJudgement>> List(const std::string& evaluation_id, const std::string& reviewer = "");
  // Judgements of every SUBMITTED reviewer of the evaluation (what the summary covers).
  absl::StatusOr<std::vector<StoredJudgement>> ListSubmitted(const std::string& evaluation_id);
  // Marks the reviewer's work submitted (FAILED_PRECONDITION when already submitted).
  absl::Status MarkSubmitted(const std::string& evaluation_id, const std::string& reviewer, const std::string& at);
  // When the reviewer submitted, or nullopt.
  absl::StatusOr<std::optional<std::string>> SubmittedAt(const std::string& evaluation_id, const std::string& reviewer);
  // Submitted reviewers of the evaluation, by name.
  absl::StatusOr<std::vector<std::string>> SubmittedReviewers(const std::string& evaluation_id);
  // Removes every judgement and submission of the evaluation (a re-exported sample starts
  // a new review; the summaries stored so far stay in evaluation_reviews).
  absl::Status Reset(const std::string& evaluation_id);
  // Evaluations with an exported sample, newest evaluation first.
  absl::StatusOr<std::vector<ReviewSampleRow>> ListSamples();

 private:
  Store* store_;
};

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_JUDGEMENT_REPOSITORY_H_
