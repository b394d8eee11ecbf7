#include "server/daemon/console_json.h"

#include "absl/strings/str_cat.h"

namespace qlorad::server {
namespace {

using Json = nlohmann::json;

absl::StatusOr<Json> ParseObject(const std::string& body) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError("body: not a JSON object (hint: Content-Type application/json, {\"field\": ...})");
  return j;
}

// Reads an optional field of `type`; INVALID_ARGUMENT naming it when it has another type.
template <typename T>
absl::Status Read(const Json& j, const char* field, Json::value_t type, T* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  const bool number_ok = type == Json::value_t::number_integer && it->is_number_integer();
  if (it->type() != type && !number_ok)
    return absl::InvalidArgumentError(absl::StrCat("body.", field, ": expected ", Json(type).type_name(), ", got ",
                                                   it->type_name()));
  *out = it->get<T>();
  return absl::OkStatus();
}

// Drops the per-example arrays of one system's results (outputs, per-example scores).
void SlimSystem(Json& system) {
  if (!system.is_object()) return;
  system.erase("outputs");
  if (system.contains("generation") && system["generation"].is_object()) system["generation"].erase("per_example");
}

// The review section without the sample (a blind sample's key stays on the server
// until each reviewer submits) and without the individual judgements.
Json SlimReview(const Json& review) {
  if (!review.is_object()) return nullptr;
  Json summary = review.value("summary", Json(nullptr));
  if (summary.is_object()) summary.erase("judgements");
  Json out = {{"summary", summary}};
  const Json sample = review.value("sample", Json(nullptr));
  if (sample.is_object()) {
    out["sample"] = {{"blind", sample.value("blind", false)},
                     {"items", sample.contains("items") ? sample["items"].size() : 0}};
  }
  return out;
}

}  // namespace

Json QueueEntryToJson(const service::ReviewQueueEntry& e) {
  return {{"evaluation_id", e.evaluation_id},
          {"adapter_id", e.adapter_id},
          {"dataset_id", e.dataset_id},
          {"created_at", e.created_at},
          {"items", e.items},
          {"blind", e.blind},
          {"rated", e.rated_by_reviewer},
          {"submitted", e.submitted_by_reviewer},
          {"submitted_reviewers", e.submitted_reviewers}};
}

Json ReviewSessionToJson(const service::ReviewSessionInfo& s) {
  Json items = Json::array();
  for (const auto& i : s.items) {
    items.push_back({{"item_id", i.item_id},
                     {"input", i.input},
                     {"reference", i.reference},
                     {"output_a", i.output_a},
                     {"output_b", i.output_b},
                     {"label_a", i.label_a},
                     {"label_b", i.label_b},
                     {"rating_a", i.rating_a},
                     {"rating_b", i.rating_b},
                     {"preference", i.preference},
                     {"comment", i.comment}});
  }
  return {{"evaluation_id", s.evaluation_id}, {"adapter_id", s.adapter_id}, {"reviewer", s.reviewer},
          {"blind", s.blind},                 {"submitted", s.submitted},   {"scale", {s.scale_min, s.scale_max}},
          {"items", items}};
}

Json AdapterToJson(const service::AdapterInfo& a) {
  return {{"adapter_id", a.id},       {"name", a.name},           {"version", a.version},
          {"state", a.state},         {"aliases", a.aliases},     {"dataset_id", a.dataset_id},
          {"job_id", a.job_id},       {"created_at", a.created_at}, {"evaluation_id", a.evaluation_id},
          {"loaded", a.loaded},       {"residency", a.residency}};
}

Json EvaluationSummaryToJson(const service::EvaluationInfo& e) {
  Json record = e.record;
  if (record.is_object()) {
    for (const char* heavy : {"example_ids", "references", "error_sample"}) record.erase(heavy);
    if (record.contains("baseline")) SlimSystem(record["baseline"]);
    if (record.contains("adapter")) SlimSystem(record["adapter"]);
    if (record.contains("review")) record["review"] = SlimReview(record["review"]);
  }
  return {{"evaluation_id", e.id},
          {"dataset_id", e.dataset_id},
          {"adapter_id", e.adapter_id},
          {"created_at", e.created_at},
          {"headline_metric", e.headline_metric},
          {"baseline_value", e.baseline_value},
          {"adapter_value", e.adapter_value},
          {"delta_low", e.delta_low},
          {"delta_high", e.delta_high},
          {"has_adapter", e.has_adapter},
          {"has_report", !e.report_path.empty()},
          {"record", record}};
}

Json PromotionCheckToJson(const service::PromotionCheck& c) {
  return {{"applies", c.applies},
          {"passed", c.passed},
          {"overridden", c.overridden},
          {"candidate_id", c.candidate_id},
          {"serving_id", c.serving_id},
          {"metric", c.metric},
          {"candidate_value", c.candidate_value},
          {"serving_value", c.serving_value},
          {"delta", c.delta},
          {"delta_low", c.delta_low},
          {"delta_high", c.delta_high},
          {"margin", c.margin},
          {"message", c.message}};
}

absl::StatusOr<service::ItemJudgement> JudgementFromJson(const std::string& body, const std::string& item_id) {
  absl::StatusOr<Json> j = ParseObject(body);
  if (!j.ok()) return j.status();
  service::ItemJudgement out;
  out.item_id = item_id;
  absl::Status s = Read(*j, "rating_a", Json::value_t::number_integer, &out.rating_a);
  if (s.ok()) s = Read(*j, "rating_b", Json::value_t::number_integer, &out.rating_b);
  if (s.ok()) s = Read(*j, "preference", Json::value_t::string, &out.preference);
  if (s.ok()) s = Read(*j, "comment", Json::value_t::string, &out.comment);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<service::DecisionInput> DecisionFromJson(const std::string& body, const std::string& actor) {
  absl::StatusOr<Json> j = ParseObject(body);
  if (!j.ok()) return j.status();
  service::DecisionInput out;
  out.actor = actor;
  const Json ids = j->value("evidence_evaluation_ids", Json::array());
  if (!ids.is_array()) return absl::InvalidArgumentError("body.evidence_evaluation_ids: expected an array of strings");
  for (const auto& id : ids) {
    if (!id.is_string()) return absl::InvalidArgumentError("body.evidence_evaluation_ids: expected an array of strings");
    out.evidence_evaluation_ids.push_back(id.get<std::string>());
  }
  absl::Status s = Read(*j, "risk_class", Json::value_t::string, &out.risk_class);
  if (s.ok()) s = Read(*j, "documentation_ref", Json::value_t::string, &out.documentation_ref);
  if (s.ok()) s = Read(*j, "note", Json::value_t::string, &out.note);
  if (!s.ok()) return s;
  out.evidence_review_summary = j->value("evidence_review_summary", Json(nullptr));
  return out;
}

}  // namespace qlorad::server
