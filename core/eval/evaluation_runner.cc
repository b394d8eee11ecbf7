// EvaluationRunner: the "evaluate" step — hold-out in, outputs from the scorer, the
// evaluation record out (artifacts on disk, record + lifecycle in the store).
#include "core/eval/evaluation_runner.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "core/eval/artifacts.h"
#include "core/store/adapter_lifecycle.h"
#include "core/store/evaluation_repository.h"
#include "core/util/path_name.h"
#include "core/util/status_macros.h"

namespace qlorad::eval {

absl::Status EvaluationRunner::CheckScoring(const std::string& scoring) {
  if (scoring != "log_likelihood" && scoring != "constrained" && scoring != "generation")
    return absl::InvalidArgumentError(absl::StrCat("scoring: '", scoring,
                                                   "' is not log_likelihood, constrained or generation"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> EvaluationRunner::SystemOutputs(const HoldoutItems& items,
                                                                         const std::vector<std::string>& labels,
                                                                         const std::string& adapter_id,
                                                                         const std::string& scoring) {
  std::vector<std::string> outputs;
  for (size_t i = 0; i < items.ids.size(); ++i) {
    if (items.preference) {
      QLORAD_ASSIGN_OR_RETURN(std::vector<double> ll, scorer_->CompletionLogLikelihoods(
                                                          adapter_id, items.prompts[i], {items.chosen[i], items.rejected[i]}));
      outputs.push_back(ll.size() == 2 && ll[0] > ll[1] ? kPreferredLabel : kDispreferredLabel);
    } else if (items.task == TaskKind::kClassification) {
      QLORAD_ASSIGN_OR_RETURN(std::string predicted, scorer_->Classify(adapter_id, items.prompts[i], labels, scoring));
      outputs.push_back(predicted);
    } else {
      QLORAD_ASSIGN_OR_RETURN(std::string text,
                              scorer_->Generate(adapter_id, items.prompts[i], items.inputs[i], kEvalMaxNewTokens));
      outputs.push_back(text);
    }
  }
  return outputs;
}

absl::StatusOr<EvaluationRecord> EvaluationRunner::Evaluate(const EvaluationRequest& request) {
  absl::MutexLock lock(&mu_);
  QLORAD_RETURN_IF_ERROR(CheckScoring(request.scoring));
  QLORAD_ASSIGN_OR_RETURN(HoldoutItems items, ReadHoldout(*datasets_, request.dataset_id, request.max_examples));
  std::vector<std::string> labels;
  const nlohmann::json train_file =
      request.manifest.value("files", nlohmann::json::object()).value("train", nlohmann::json::object());
  if (train_file.contains("label_distribution"))
    for (auto it = train_file["label_distribution"].begin(); it != train_file["label_distribution"].end(); ++it)
      labels.push_back(it.key());
  if (items.preference) labels = {kPreferredLabel, kDispreferredLabel};
  nlohmann::json settings = {{"prompt_format", scorer_->prompt_format()},
                             {"scoring", items.task == TaskKind::kClassification ? request.scoring : "greedy"},
                             {"max_new_tokens", kEvalMaxNewTokens}, {"examples", items.ids.size()},
                             {"labels", labels}};
  if (items.preference) {
    settings["scoring"] = "log_likelihood";
    settings["task"] = "preference";  // accuracy = share of pairs whose chosen completion is more likely
  }
  const std::string key = BaselineKey(scorer_->base_fingerprint(), request.holdout_sha256, settings);
  EvaluationInputs inputs{items.ids, items.prompts, items.references, {}, std::nullopt};
  QLORAD_ASSIGN_OR_RETURN(inputs.baseline_outputs, BaselineOutputs(key, items, labels, request.scoring));
  if (!request.adapter_id.empty()) {
    QLORAD_ASSIGN_OR_RETURN(inputs.adapter_outputs, SystemOutputs(items, labels, request.adapter_id, request.scoring));
  }
  RecordOptions options;
  options.task = items.task;
  options.labels = labels;
  if (items.preference) options.headline_metric = "accuracy";
  options.record_id = request.record_id;
  options.dataset_id = request.dataset_id;
  options.base_fingerprint = scorer_->base_fingerprint();
  options.holdout_checksum = request.holdout_sha256;
  options.settings = settings;
  options.adapter_id = request.adapter_id;
  QLORAD_ASSIGN_OR_RETURN(EvaluationRecord record, BuildEvaluationRecord(inputs, options));
  QLORAD_ASSIGN_OR_RETURN(const std::string record_dir, PathInside(dir_, "evaluation_id", record.id));
  QLORAD_RETURN_IF_ERROR(WriteEvaluationArtifacts(record, record_dir));
  QLORAD_RETURN_IF_ERROR(StoreRecord(record, request.actor.empty() ? "system" : request.actor));
  return record;
}

absl::Status EvaluationRunner::StoreRecord(const EvaluationRecord& record, const std::string& actor) {
  const std::string& adapter_id = record.adapter_id;
  return db_->With([&](store::Store& s) {
    return s.InTransaction([&]() -> absl::Status {
      QLORAD_RETURN_IF_ERROR(store::EvaluationRepository(&s).Put(
          {record.id, record.baseline_key, adapter_id, record.created_at, EvaluationRecordToJson(record).dump()}));
      if (adapter_id.empty()) return absl::OkStatus();
      store::AdapterLifecycle lifecycle(&s);
      QLORAD_ASSIGN_OR_RETURN(store::AdapterVersion version, lifecycle.Get(adapter_id));
      if (version.state == store::AdapterState::kDeployed || version.state == store::AdapterState::kRetired)
        return absl::OkStatus();  // a deployed version is evaluated for information only
      return lifecycle.MarkEvaluated(adapter_id, actor, record.id);
    });
  });
}

absl::StatusOr<nlohmann::json> EvaluationRunner::StoredRecordJson(const std::string& id) {
  QLORAD_RETURN_IF_ERROR(ValidatePathName("evaluation_id", id));  // before the id can name a directory
  QLORAD_ASSIGN_OR_RETURN(store::StoredEvaluation stored, db_->Read<store::StoredEvaluation>([&](store::Store& s) {
    return store::EvaluationRepository(&s).Get(id);
  }));
  nlohmann::json json = nlohmann::json::parse(stored.record_json, nullptr, false);
  if (json.is_discarded()) return absl::DataLossError(absl::StrCat("evaluation '", id, "': stored record is not JSON"));
  return json;
}

absl::StatusOr<std::string> EvaluationRunner::ReportPath(const std::string& id) const {
  QLORAD_ASSIGN_OR_RETURN(const std::string dir, PathInside(dir_, "evaluation_id", id));
  return dir + "/report.html";
}

absl::StatusOr<EvaluationRecord> EvaluationRunner::Get(const std::string& id) {
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json json, StoredRecordJson(id));
  QLORAD_ASSIGN_OR_RETURN(std::optional<nlohmann::json> review, reviews_.LatestReview(id));
  if (review) json["review"] = *review;
  return EvaluationRecordFromJson(json);
}

}  // namespace qlorad::eval
