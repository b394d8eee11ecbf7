#include "core/service/interactive_review.h"

#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/eval/review.h"
#include "core/store/audit_log.h"
#include "core/store/evaluation_repository.h"
#include "core/store/judgement_repository.h"
#include "core/store/review_repository.h"
#include "core/util/path_name.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

constexpr size_t kMaxCommentBytes = 10000;

absl::Status CheckNames(const std::string& evaluation_id, const std::string& reviewer) {
  QLORAD_RETURN_IF_ERROR(ValidatePathName("evaluation_id", evaluation_id));  // evaluations/<id> holds its report
  if (reviewer.empty()) return absl::InvalidArgumentError("reviewer: empty (the authenticated principal's name)");
  return absl::OkStatus();
}

absl::StatusOr<eval::ReviewSample> LoadSample(store::Store& s, const std::string& evaluation_id) {
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json json, store::ReviewRepository::GetSampleIn(s, evaluation_id));
  return eval::ReviewSampleFromJson(json);
}

// Whether output A of `item_id` is the adapter's (blind samples only; A = baseline otherwise).
bool AIsAdapter(const eval::ReviewSample& sample, const std::string& item_id) {
  if (!sample.blind) return false;
  auto it = sample.a_is_adapter.find(item_id);
  return it != sample.a_is_adapter.end() && it->second;
}

// A stored (de-blinded) preference as the reviewer sees it: A | B | tie.
std::string ShownPreference(const std::string& stored, bool a_is_adapter) {
  if (stored == "tie") return "tie";
  return (stored == "adapter") == a_is_adapter ? "A" : "B";
}

ReviewItemView ItemView(const eval::ReviewSample& sample, const eval::ReviewItem& item, bool show_labels,
                        const store::StoredJudgement* judged) {
  const bool swap = AIsAdapter(sample, item.id);
  ReviewItemView v;
  v.item_id = item.id;
  v.input = item.input;
  v.reference = item.reference;
  v.output_a = swap ? item.adapter_output : item.baseline_output;
  v.output_b = swap ? item.baseline_output : item.adapter_output;
  if (show_labels) {
    v.label_a = swap ? "adapter" : "baseline";
    v.label_b = swap ? "baseline" : "adapter";
  }
  if (judged != nullptr) {
    v.rating_a = swap ? judged->adapter_rating : judged->baseline_rating;
    v.rating_b = swap ? judged->baseline_rating : judged->adapter_rating;
    v.preference = ShownPreference(judged->preference, swap);
    v.comment = judged->comment;
  }
  return v;
}

absl::Status CheckJudgement(const eval::ReviewSample& sample, const ItemJudgement& j) {
  if (j.item_id.empty()) return absl::InvalidArgumentError("item_id: must name an item of the review sample");
  for (const auto& [field, value] : {std::pair<const char*, int>{"rating_a", j.rating_a}, {"rating_b", j.rating_b}}) {
    if (value < sample.scale_min || value > sample.scale_max)
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, " is outside the rating scale [", sample.scale_min,
                                                     ", ", sample.scale_max, "]"));
  }
  if (j.preference != "A" && j.preference != "B" && j.preference != "tie")
    return absl::InvalidArgumentError(absl::StrCat("preference: '", j.preference, "' is not A, B or tie"));
  if (j.comment.size() > kMaxCommentBytes)
    return absl::InvalidArgumentError(absl::StrCat("comment: ", j.comment.size(), " bytes (at most ", kMaxCommentBytes, ")"));
  for (const auto& item : sample.items)
    if (item.id == j.item_id) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("item_id: '", j.item_id, "' is not in the review sample"));
}

eval::Rating ToRating(const store::StoredJudgement& j) {
  eval::Rating r;
  r.item_id = j.item_id;
  r.reviewer = j.reviewer;
  r.baseline_rating = j.baseline_rating;
  r.adapter_rating = j.adapter_rating;
  r.preference = j.preference == "adapter"    ? eval::Preference::kAdapter
                 : j.preference == "baseline" ? eval::Preference::kBaseline
                                              : eval::Preference::kTie;
  r.comment = j.comment;
  return r;
}

// How many of the sample's items `judged` leaves unrated, and the first of them.
int64_t Unrated(const eval::ReviewSample& sample, const std::vector<store::StoredJudgement>& judged, std::string* first) {
  std::map<std::string, bool> rated;
  for (const auto& j : judged) rated[j.item_id] = true;
  int64_t missing = 0;
  for (const auto& item : sample.items) {
    if (rated.count(item.id)) continue;
    if (missing++ == 0) *first = item.id;
  }
  return missing;
}

nlohmann::json AuditEntryJson(const store::AuditEntry& e) {
  return {{"seq", e.seq},
          {"at", e.at},
          {"actor", e.actor},
          {"subject", e.entity_type + ":" + e.entity_id},
          {"action", e.action},
          {"from_state", e.from_state},
          {"to_state", e.to_state},
          {"details", e.details},
          {"hash", e.hash}};
}

}  // namespace

absl::StatusOr<std::vector<ReviewQueueEntry>> InteractiveReview::Queue(const std::string& reviewer) {
  if (reviewer.empty()) return absl::InvalidArgumentError("reviewer: empty (the authenticated principal's name)");
  return db_->Read<std::vector<ReviewQueueEntry>>([&](store::Store& s) -> absl::StatusOr<std::vector<ReviewQueueEntry>> {
    store::JudgementRepository judgements(&s);
    QLORAD_ASSIGN_OR_RETURN(std::vector<store::ReviewSampleRow> rows, judgements.ListSamples());
    std::vector<ReviewQueueEntry> out;
    for (const store::ReviewSampleRow& row : rows) {
      ReviewQueueEntry e;
      e.evaluation_id = row.evaluation_id;
      e.adapter_id = row.adapter_id;
      e.dataset_id = row.dataset_id;
      e.created_at = row.created_at;
      e.items = row.items;
      e.blind = row.blind;
      QLORAD_ASSIGN_OR_RETURN(std::vector<store::StoredJudgement> mine, judgements.List(row.evaluation_id, reviewer));
      e.rated_by_reviewer = static_cast<int64_t>(mine.size());
      QLORAD_ASSIGN_OR_RETURN(std::optional<std::string> submitted, judgements.SubmittedAt(row.evaluation_id, reviewer));
      e.submitted_by_reviewer = submitted.has_value();
      QLORAD_ASSIGN_OR_RETURN(e.submitted_reviewers, judgements.SubmittedReviewers(row.evaluation_id));
      out.push_back(std::move(e));
    }
    return out;
  });
}

absl::StatusOr<ReviewSessionInfo> InteractiveReview::Session(const std::string& evaluation_id, const std::string& reviewer) {
  QLORAD_RETURN_IF_ERROR(CheckNames(evaluation_id, reviewer));
  return db_->Read<ReviewSessionInfo>([&](store::Store& s) -> absl::StatusOr<ReviewSessionInfo> {
    QLORAD_ASSIGN_OR_RETURN(eval::ReviewSample sample, LoadSample(s, evaluation_id));
    QLORAD_ASSIGN_OR_RETURN(store::StoredEvaluation record, store::EvaluationRepository(&s).Get(evaluation_id));
    store::JudgementRepository judgements(&s);
    QLORAD_ASSIGN_OR_RETURN(std::vector<store::StoredJudgement> mine, judgements.List(evaluation_id, reviewer));
    QLORAD_ASSIGN_OR_RETURN(std::optional<std::string> submitted, judgements.SubmittedAt(evaluation_id, reviewer));
    std::map<std::string, const store::StoredJudgement*> by_item;
    for (const auto& j : mine) by_item[j.item_id] = &j;
    ReviewSessionInfo info;
    info.evaluation_id = evaluation_id;
    info.adapter_id = record.adapter_id;
    info.reviewer = reviewer;
    info.blind = sample.blind;
    info.submitted = submitted.has_value();
    info.scale_min = sample.scale_min;
    info.scale_max = sample.scale_max;
    const bool show_labels = !sample.blind || info.submitted;
    for (const auto& item : sample.items) {
      auto it = by_item.find(item.id);
      info.items.push_back(ItemView(sample, item, show_labels, it == by_item.end() ? nullptr : it->second));
    }
    return info;
  });
}

absl::Status InteractiveReview::Save(const std::string& evaluation_id, const std::string& reviewer,
                                     const ItemJudgement& j) {
  QLORAD_RETURN_IF_ERROR(CheckNames(evaluation_id, reviewer));
  return db_->With([&](store::Store& s) -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(eval::ReviewSample sample, LoadSample(s, evaluation_id));
    QLORAD_RETURN_IF_ERROR(CheckJudgement(sample, j));
    const bool swap = AIsAdapter(sample, j.item_id);
    store::StoredJudgement row;
    row.evaluation_id = evaluation_id;
    row.reviewer = reviewer;
    row.item_id = j.item_id;
    row.baseline_rating = swap ? j.rating_b : j.rating_a;
    row.adapter_rating = swap ? j.rating_a : j.rating_b;
    row.preference = j.preference == "tie" ? "tie" : ((j.preference == "A") == swap ? "adapter" : "baseline");
    row.comment = j.comment;
    row.saved_at = now_();
    return store::JudgementRepository(&s).Save(row);
  });
}

absl::StatusOr<nlohmann::json> InteractiveReview::Submit(const std::string& evaluation_id, const std::string& reviewer) {
  QLORAD_RETURN_IF_ERROR(CheckNames(evaluation_id, reviewer));
  return db_->Read<nlohmann::json>([&](store::Store& s) -> absl::StatusOr<nlohmann::json> {
    nlohmann::json summary_json;
    QLORAD_RETURN_IF_ERROR(s.InTransaction([&]() -> absl::Status {
      QLORAD_ASSIGN_OR_RETURN(eval::ReviewSample sample, LoadSample(s, evaluation_id));
      store::JudgementRepository judgements(&s);
      QLORAD_ASSIGN_OR_RETURN(std::vector<store::StoredJudgement> mine, judgements.List(evaluation_id, reviewer));
      std::string first;
      if (const int64_t unrated = Unrated(sample, mine, &first); unrated > 0)
        return absl::FailedPreconditionError(absl::StrCat(unrated, " of ", sample.items.size(),
                                                          " items are unrated (first: '", first,
                                                          "'); rate every item before submitting"));
      const std::string now = now_();
      QLORAD_RETURN_IF_ERROR(judgements.MarkSubmitted(evaluation_id, reviewer, now));
      QLORAD_ASSIGN_OR_RETURN(std::vector<store::StoredJudgement> submitted, judgements.ListSubmitted(evaluation_id));
      std::vector<eval::Rating> ratings;
      for (const auto& j : submitted) ratings.push_back(ToRating(j));
      QLORAD_ASSIGN_OR_RETURN(eval::ReviewSummary summary, eval::SummariseReview(ratings));
      summary_json = eval::ReviewSummaryToJson(summary);
      QLORAD_RETURN_IF_ERROR(
          store::ReviewRepository::AddReviewIn(s, evaluation_id, eval::ReviewRecordSection(sample, &summary), now));
      store::AuditEntry entry;
      entry.at = now;
      entry.actor = reviewer;
      entry.entity_type = "evaluation";
      entry.entity_id = evaluation_id;
      entry.action = "review.submit";
      entry.details = {{"reviewer", reviewer},
                       {"items", sample.items.size()},
                       {"blind", sample.blind},
                       {"summary_updated", true},
                       {"reviewers", summary_json["reviewers"]},
                       {"mean_baseline_rating", summary_json["mean_baseline_rating"]},
                       {"mean_adapter_rating", summary_json["mean_adapter_rating"]},
                       {"win_rate", summary_json["win_rate"]},
                       {"rating_agreement", summary_json["rating_agreement"]},
                       {"preference_agreement", summary_json["preference_agreement"]}};
      return store::AuditLog(&s).Append(std::move(entry)).status();
    }));
    return summary_json;
  });
}

absl::StatusOr<std::vector<nlohmann::json>> InteractiveReview::AuditTrail(const std::string& subject) {
  const size_t colon = subject.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == subject.size())
    return absl::InvalidArgumentError(
        absl::StrCat("subject: '", subject, "' is not 'type:id' (e.g. adapter:sentiment@1, evaluation:<id>)"));
  const std::string type = subject.substr(0, colon), id = subject.substr(colon + 1);
  return db_->Read<std::vector<nlohmann::json>>([&](store::Store& s) -> absl::StatusOr<std::vector<nlohmann::json>> {
    QLORAD_ASSIGN_OR_RETURN(std::vector<store::AuditEntry> entries, store::AuditLog(&s).List(type, id));
    std::vector<nlohmann::json> out;
    for (const auto& e : entries) out.push_back(AuditEntryJson(e));
    return out;
  });
}

}  // namespace qlorad::service
