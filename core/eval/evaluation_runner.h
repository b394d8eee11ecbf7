// EvaluationRunner: the "baseline" and "evaluate" steps and human review, end to end.
// Evaluate() scores a dataset's hold-out with the base and (optionally) an adapter
// through a Scorer, builds the evaluation record (metrics, bootstrap intervals, delta),
// writes its artifacts (record JSON, HTML report) under evaluations_dir/<id>/, stores
// the record and marks the adapter evaluated in ONE transaction (a deployed or retired
// adapter is evaluated for information only). The baseline is computed once per (base
// fingerprint, hold-out checksum, settings) and reused (baseline.cc). Review
// (evaluation_reviews.cc): a seeded sample out, reviewers' ratings in, agreement stored.
// Evaluations run one at a time. Depends on core/store, core/data; never on core/service.
#ifndef QLORAD_CORE_EVAL_EVALUATION_RUNNER_H_
#define QLORAD_CORE_EVAL_EVALUATION_RUNNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/data/dataset_store.h"
#include "core/eval/evaluation_record.h"
#include "core/eval/holdout.h"
#include "core/eval/review.h"
#include "core/eval/scorer.h"
#include "core/serve/generation_limits.h"  // header-only, torch-free
#include "core/store/review_repository.h"
#include "core/store/shared_store.h"
#include "nlohmann/json.hpp"

namespace qlorad::eval {

// Tokens an evaluation generates per example (generation tasks, generation scoring):
// the default of a request that leaves max_new_tokens unset.
inline constexpr int64_t kEvalMaxNewTokens = serve::kDefaultMaxNewTokens;

struct EvaluationRequest {
  std::string record_id;       // the new record's id
  std::string dataset_id;
  std::string holdout_sha256;  // the dataset's hold-out checksum
  nlohmann::json manifest;     // the dataset manifest: labels from files.train.label_distribution
  std::string adapter_id;      // "" = the baseline only; else ready on the scorer
  std::string scoring = "log_likelihood";
  int64_t max_examples = 0;    // 0 = the whole hold-out
  std::string actor;           // who evaluates ("" = system)
};

struct ReviewerRatings {
  std::string reviewer;
  std::string format;  // csv (default) | jsonl
  std::string content;
};

class EvaluationRunner {
 public:
  // Every pointer must outlive the runner.
  EvaluationRunner(const data::DatasetStore* datasets, store::SharedStore* db, Scorer* scorer,
                   std::string evaluations_dir)
      : datasets_(datasets), db_(db), scorer_(scorer), reviews_(db), dir_(std::move(evaluations_dir)) {}

  // INVALID_ARGUMENT naming `scoring` unless log_likelihood, constrained or generation.
  static absl::Status CheckScoring(const std::string& scoring);
  absl::StatusOr<EvaluationRecord> Evaluate(const EvaluationRequest& request) ABSL_LOCKS_EXCLUDED(mu_);
  // The stored record with its newest imported review (NOT_FOUND naming the id).
  absl::StatusOr<EvaluationRecord> Get(const std::string& id);
  // evaluations/<id>/report.html; INVALID_ARGUMENT naming evaluation_id for an id that is
  // not a path name (core/util/path_name.h) or resolves outside the evaluations directory.
  absl::StatusOr<std::string> ReportPath(const std::string& id) const;

  // Selects and stores the review sample of an evaluation with adapter outputs.
  absl::StatusOr<ReviewSample> ExportReviewSample(const std::string& evaluation_id, const ReviewExportOptions& options,
                                                  const std::string& at);
  // Imports ratings against the stored sample; stores and returns the review section.
  absl::StatusOr<nlohmann::json> ImportReviews(const std::string& evaluation_id,
                                               const std::vector<ReviewerRatings>& files, const std::string& at);

 private:
  // The stored record JSON of `id` (NOT_FOUND naming it).
  absl::StatusOr<nlohmann::json> StoredRecordJson(const std::string& id);
  // Each item's output from `adapter_id` ("" = base).
  absl::StatusOr<std::vector<std::string>> SystemOutputs(const HoldoutItems& items, const std::vector<std::string>& labels,
                                                         const std::string& adapter_id, const std::string& scoring);
  // The base's outputs: those of the newest stored baseline with `key`, else computed (baseline.cc).
  absl::StatusOr<std::vector<std::string>> BaselineOutputs(const std::string& key, const HoldoutItems& items,
                                                           const std::vector<std::string>& labels,
                                                           const std::string& scoring);
  // Stores the record and, for an adapter, marks it evaluated: one transaction.
  absl::Status StoreRecord(const EvaluationRecord& record, const std::string& actor);

  const data::DatasetStore* datasets_;
  store::SharedStore* db_;
  Scorer* scorer_;
  store::ReviewRepository reviews_;
  const std::string dir_;
  absl::Mutex mu_;  // evaluations run one at a time (they share the scorer's engine)
};

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_EVALUATION_RUNNER_H_
