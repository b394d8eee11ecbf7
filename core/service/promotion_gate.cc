#include "core/service/promotion_gate.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/eval/promotion_comparison.h"
#include "core/store/evaluation_repository.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

std::string Verdict(const PromotionCheck& c, size_t examples) {
  return absl::StrFormat(
      "promotion gate: %s %s %.4f vs serving %s %.4f on dataset %s (%d examples): delta %+.4f (95%% CI %+.4f to "
      "%+.4f), margin %.4f: %s",
      c.candidate_id, c.metric, c.candidate_value, c.serving_id, c.serving_value, c.dataset_id, examples, c.delta,
      c.delta_low, c.delta_high, c.margin,
      c.passed ? "passed"
               : absl::StrFormat("refused (the lower bound %+.4f is below -%.4f: not shown to be within the margin of "
                                 "the serving version; a larger hold-out narrows the interval)",
                                 c.delta_low, c.margin));
}

std::string MissingEvaluation(const PromotionCheck& c, const eval::EvaluationRecord& serving) {
  return absl::StrCat("promotion gate: ", c.candidate_id, " has no evaluation comparable with ", c.serving_id,
                      "'s evaluation ", serving.id, " (dataset ", serving.dataset_id, ", ", serving.headline_metric,
                      ", settings ", serving.settings.dump(), "): refused (hint: evaluate it first: qloractl evaluations create --dataset ",
                      serving.dataset_id, " --adapter ", c.candidate_id, " with the same scoring and max examples)");
}

}  // namespace

absl::StatusOr<std::vector<eval::EvaluationRecord>> PromotionGate::RecordsOf(const std::string& adapter_id) {
  QLORAD_ASSIGN_OR_RETURN(std::vector<store::StoredEvaluation> stored,
                          db_->Read<std::vector<store::StoredEvaluation>>(
                              [&](store::Store& s) { return store::EvaluationRepository(&s).ListForAdapter(adapter_id); }));
  std::vector<eval::EvaluationRecord> records;
  for (auto it = stored.rbegin(); it != stored.rend(); ++it) {
    nlohmann::json j = nlohmann::json::parse(it->record_json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::DataLossError(absl::StrCat("evaluation ", it->id, ": stored record is not JSON"));
    QLORAD_ASSIGN_OR_RETURN(eval::EvaluationRecord record, eval::EvaluationRecordFromJson(j));
    if (record.adapter) records.push_back(std::move(record));
  }
  return records;
}

void PromotionGate::Compare(const std::vector<eval::EvaluationRecord>& candidate,
                            const std::vector<eval::EvaluationRecord>& serving, PromotionCheck* check) {
  for (const eval::EvaluationRecord& s : serving) {
    auto c = std::find_if(candidate.begin(), candidate.end(),
                          [&](const eval::EvaluationRecord& r) { return eval::CheckComparable(r, s).ok(); });
    if (c == candidate.end()) continue;
    absl::StatusOr<eval::PromotionComparison> cmp = eval::ComparePromotion(*c, s);
    if (!cmp.ok()) continue;  // e.g. a malformed stored record: try an older pair
    check->candidate_evaluation_id = c->id;
    check->serving_evaluation_id = s.id;
    check->dataset_id = s.dataset_id;
    check->metric = cmp->metric;
    check->candidate_value = cmp->candidate_value;
    check->serving_value = cmp->serving_value;
    check->delta = cmp->delta.point;
    check->delta_low = cmp->delta.lower;
    check->delta_high = cmp->delta.upper;
    check->passed = cmp->delta.lower >= -margin_;
    check->message = Verdict(*check, s.example_ids.size());
    return;
  }
  const eval::EvaluationRecord& newest = serving.front();
  check->serving_evaluation_id = newest.id;
  check->dataset_id = newest.dataset_id;
  check->metric = newest.headline_metric;
  check->passed = false;
  check->message = MissingEvaluation(*check, newest);
}

absl::StatusOr<PromotionCheck> PromotionGate::Check(const std::string& candidate_id, const std::string& alias) {
  PromotionCheck check;
  check.candidate_id = candidate_id;
  check.margin = margin_;
  QLORAD_ASSIGN_OR_RETURN(std::optional<std::string> serving, adapters_->ResolveAlias(alias));
  check.serving_id = serving.value_or("");
  if (!serving) {
    check.message = absl::StrCat("promotion gate: not applicable (alias '", alias, "' serves nothing yet)");
    return check;
  }
  if (*serving == candidate_id) {
    check.message = absl::StrCat("promotion gate: not applicable ('", alias, "' already serves ", candidate_id, ")");
    return check;
  }
  QLORAD_ASSIGN_OR_RETURN(std::vector<eval::EvaluationRecord> serving_records, RecordsOf(*serving));
  if (serving_records.empty()) {
    check.message = absl::StrCat("promotion gate: not applicable (the serving version ", *serving,
                                 " has no evaluation to compare with)");
    return check;
  }
  check.applies = true;
  QLORAD_ASSIGN_OR_RETURN(std::vector<eval::EvaluationRecord> candidate_records, RecordsOf(candidate_id));
  Compare(candidate_records, serving_records, &check);
  return check;
}

nlohmann::json PromotionCheckToJson(const PromotionCheck& c) {
  nlohmann::json j = {{"applies", c.applies}, {"passed", c.passed}, {"overridden", c.overridden},
                      {"candidate", c.candidate_id}, {"serving", c.serving_id}, {"margin", c.margin},
                      {"message", c.message}};
  if (!c.candidate_evaluation_id.empty()) {
    j["dataset_id"] = c.dataset_id;
    j["metric"] = c.metric;
    j["candidate_evaluation_id"] = c.candidate_evaluation_id;
    j["serving_evaluation_id"] = c.serving_evaluation_id;
    j["candidate_value"] = c.candidate_value;
    j["serving_value"] = c.serving_value;
    j["delta"] = {{"point", c.delta}, {"lower", c.delta_low}, {"upper", c.delta_high}, {"confidence", 0.95}};
  } else if (c.applies) {
    j["serving_evaluation_id"] = c.serving_evaluation_id;
    j["dataset_id"] = c.dataset_id;
  }
  return j;
}

}  // namespace qlorad::service
