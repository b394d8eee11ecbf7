// ServiceCore: evaluation of the base and an adapter on a dataset's hold-out (the
// baseline is computed once per base fingerprint + hold-out checksum + settings and
// reused) and human review (seeded sample export, ratings import with agreement).
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/eval/artifacts.h"
#include "core/eval/evaluation_access.h"
#include "core/eval/evaluation_record.h"
#include "core/eval/review.h"
#include "core/service/core_impl.h"
#include "core/store/adapter_lifecycle.h"
#include "core/store/evaluation_repository.h"
#include "core/tokenizer/instruction_prompt.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

struct HoldoutItems {
  eval::TaskKind task = eval::TaskKind::kClassification;
  std::vector<std::string> ids, prompts, inputs, references;
};

absl::StatusOr<HoldoutItems> ReadHoldout(const data::DatasetStore& datasets, const std::string& dataset_id,
                                         int64_t max_examples) {
  QLORAD_ASSIGN_OR_RETURN(auto reader, eval::EvaluationAccess::OpenHoldout(datasets, dataset_id));
  HoldoutItems items;
  data::Example ex;
  while (max_examples <= 0 || static_cast<int64_t>(items.ids.size()) < max_examples) {
    QLORAD_ASSIGN_OR_RETURN(bool more, reader->Next(&ex));
    if (!more) break;
    items.ids.push_back(absl::StrCat("holdout-line-", ex.line));
    switch (ex.format) {
      case data::DatasetFormat::kClassification:
        items.prompts.push_back(ex.text), items.inputs.push_back(""), items.references.push_back(ex.label);
        break;
      case data::DatasetFormat::kPromptCompletion:
        items.task = eval::TaskKind::kGeneration;
        items.prompts.push_back(ex.prompt), items.inputs.push_back(""), items.references.push_back(ex.completion);
        break;
      case data::DatasetFormat::kAlpaca:
        items.task = eval::TaskKind::kGeneration;
        items.prompts.push_back(ex.instruction), items.inputs.push_back(ex.input), items.references.push_back(ex.output);
        break;
      default:
        return absl::FailedPreconditionError(absl::StrCat("dataset '", dataset_id,
                                                          "': chat datasets are not evaluated yet (hint: use prompt_completion)"));
    }
  }
  if (items.ids.empty()) return absl::FailedPreconditionError(absl::StrCat("dataset '", dataset_id, "' has an empty hold-out"));
  return items;
}

// Each item's output from the engine with `adapter_id` ("" = base).
// The label a free-form answer names: the first label the trimmed, lower-cased answer
// starts with; otherwise the answer itself (counted as wrong).
std::string MatchLabel(const std::string& answer, const std::vector<std::string>& labels) {
  std::string a = std::string(absl::StripAsciiWhitespace(answer));
  const std::string lower = absl::AsciiStrToLower(a);
  for (const auto& label : labels)
    if (absl::StartsWith(lower, absl::AsciiStrToLower(label))) return label;
  return a;
}

absl::StatusOr<std::string> ClassifyOne(serve::ServingEngine& engine, const std::string& adapter_id, const std::string& text,
                                        const std::vector<std::string>& labels, const std::string& scoring) {
  if (scoring == "constrained") {
    QLORAD_ASSIGN_OR_RETURN(serve::LabelScores s, engine.ConstrainedChoice(adapter_id, text, labels));
    return s.predicted;
  }
  if (scoring == "generation") {
    serve::GenerateCall call{adapter_id, tokenizer::kClassificationInstruction, text, false, 8, {}};
    QLORAD_ASSIGN_OR_RETURN(serve::GenerateOutcome o, engine.Generate(call));
    return MatchLabel(o.text, labels);
  }
  QLORAD_ASSIGN_OR_RETURN(serve::LabelScores s, engine.ScoreLabels(adapter_id, text, labels));
  return s.predicted;
}

absl::StatusOr<std::vector<std::string>> SystemOutputs(serve::ServingEngine& engine, const HoldoutItems& items,
                                                       const std::vector<std::string>& labels, const std::string& adapter_id,
                                                       const std::string& scoring) {
  std::vector<std::string> outputs;
  for (size_t i = 0; i < items.ids.size(); ++i) {
    if (items.task == eval::TaskKind::kClassification) {
      QLORAD_ASSIGN_OR_RETURN(std::string predicted, ClassifyOne(engine, adapter_id, items.prompts[i], labels, scoring));
      outputs.push_back(predicted);
    } else {
      serve::GenerateCall call{adapter_id, items.prompts[i], items.inputs[i], false, serve::kDefaultMaxNewTokens, {}};
      QLORAD_ASSIGN_OR_RETURN(serve::GenerateOutcome o, engine.Generate(call));
      outputs.push_back(o.text);
    }
  }
  return outputs;
}

EvaluationInfo ToEvaluationInfo(const eval::EvaluationRecord& r, const std::string& report_path) {
  EvaluationInfo info;
  info.id = r.id;
  info.dataset_id = r.dataset_id;
  info.adapter_id = r.adapter_id;
  info.created_at = r.created_at;
  info.headline_metric = r.headline_metric;
  info.report_path = report_path;
  info.baseline_value = r.baseline.headline.point;
  info.has_adapter = r.adapter.has_value();
  if (r.adapter) info.adapter_value = r.adapter->headline.point;
  if (r.delta) info.delta_low = r.delta->lower, info.delta_high = r.delta->upper;
  info.record = eval::EvaluationRecordToJson(r);
  return info;
}

}  // namespace

absl::StatusOr<EvaluationInfo> ServiceCoreImpl::Evaluate(const EvaluationInput& input) {
  std::lock_guard<std::mutex> lock(eval_mu_);
  if (input.scoring != "log_likelihood" && input.scoring != "constrained" && input.scoring != "generation")
    return absl::InvalidArgumentError(absl::StrCat("scoring: '", input.scoring,
                                                   "' is not log_likelihood, constrained or generation"));
  QLORAD_ASSIGN_OR_RETURN(DatasetInfo dataset, GetDataset(input.dataset_id));
  std::string adapter_id;
  if (!input.adapter.empty()) {
    QLORAD_ASSIGN_OR_RETURN(adapter_id, ResolveAdapter(input.adapter));
    QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->GetAdapter(adapter_id));
    QLORAD_RETURN_IF_ERROR(EngineLoad(adapter_id, row.path, false));
  }
  QLORAD_ASSIGN_OR_RETURN(HoldoutItems items, ReadHoldout(*datasets_, input.dataset_id, input.max_examples));
  std::vector<std::string> labels;
  const nlohmann::json& train_file = dataset.manifest["files"]["train"];
  if (train_file.contains("label_distribution"))
    for (auto it = train_file["label_distribution"].begin(); it != train_file["label_distribution"].end(); ++it)
      labels.push_back(it.key());
  const nlohmann::json settings = {{"prompt_format", std::string(tokenizer::PromptFormatName(engine_->prompt_format()))},
                                   {"scoring", items.task == eval::TaskKind::kClassification ? input.scoring : "greedy"},
                                   {"max_new_tokens", serve::kDefaultMaxNewTokens}, {"examples", items.ids.size()}, {"labels", labels}};
  const std::string key = eval::BaselineKey(engine_->fingerprint(), dataset.holdout_sha256, settings);
  eval::EvaluationInputs inputs{items.ids, items.prompts, items.references, {}, std::nullopt};
  std::optional<store::StoredEvaluation> prior;
  QLORAD_RETURN_IF_ERROR(store_->WithStore([&](store::Store& s) -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(prior, store::EvaluationRepository(&s).FindLatestBaseline(key));
    return absl::OkStatus();
  }));
  if (prior) {  // the baseline for this triple was computed before: reuse its outputs
    QLORAD_ASSIGN_OR_RETURN(eval::EvaluationRecord previous, eval::EvaluationRecordFromJson(nlohmann::json::parse(prior->record_json)));
    inputs.baseline_outputs = previous.baseline.outputs;
  } else {
    QLORAD_ASSIGN_OR_RETURN(inputs.baseline_outputs, SystemOutputs(*engine_, items, labels, "", input.scoring));
  }
  if (!adapter_id.empty()) {
    QLORAD_ASSIGN_OR_RETURN(inputs.adapter_outputs, SystemOutputs(*engine_, items, labels, adapter_id, input.scoring));
  }
  eval::RecordOptions options;
  options.task = items.task;
  options.labels = labels;
  options.record_id = NewId("eval");
  options.dataset_id = input.dataset_id;
  options.base_fingerprint = engine_->fingerprint();
  options.holdout_checksum = dataset.holdout_sha256;
  options.settings = settings;
  options.adapter_id = adapter_id;
  QLORAD_ASSIGN_OR_RETURN(eval::EvaluationRecord record, eval::BuildEvaluationRecord(inputs, options));
  const std::string dir = options_.state_dir + "/evaluations/" + record.id;
  QLORAD_RETURN_IF_ERROR(eval::WriteEvaluationArtifacts(record, dir));
  QLORAD_RETURN_IF_ERROR(store_->WithStore([&](store::Store& s) -> absl::Status {
    QLORAD_RETURN_IF_ERROR(store::EvaluationRepository(&s).Put(
        {record.id, record.baseline_key, adapter_id, record.created_at, eval::EvaluationRecordToJson(record).dump()}));
    if (adapter_id.empty()) return absl::OkStatus();
    store::AdapterLifecycle lifecycle(&s);
    QLORAD_ASSIGN_OR_RETURN(store::AdapterVersion version, lifecycle.Get(adapter_id));
    if (version.state == store::AdapterState::kDeployed || version.state == store::AdapterState::kRetired)
      return absl::OkStatus();  // a deployed version is evaluated for information only
    return lifecycle.MarkEvaluated(adapter_id, input.actor.empty() ? "system" : input.actor, record.id);
  }));
  return ToEvaluationInfo(record, dir + "/report.html");
}

absl::StatusOr<nlohmann::json> ServiceCoreImpl::StoredRecordJson(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("evaluation_id: must not be empty");
  store::StoredEvaluation stored;
  QLORAD_RETURN_IF_ERROR(store_->WithStore([&](store::Store& s) -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(stored, store::EvaluationRepository(&s).Get(id));
    return absl::OkStatus();
  }));
  nlohmann::json json = nlohmann::json::parse(stored.record_json, nullptr, false);
  if (json.is_discarded()) return absl::DataLossError(absl::StrCat("evaluation '", id, "': stored record is not JSON"));
  return json;
}

absl::StatusOr<EvaluationInfo> ServiceCoreImpl::GetEvaluation(const std::string& id) {
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json json, StoredRecordJson(id));
  QLORAD_ASSIGN_OR_RETURN(std::optional<nlohmann::json> review, store_->LatestReview(id));
  if (review) json["review"] = *review;
  QLORAD_ASSIGN_OR_RETURN(eval::EvaluationRecord record, eval::EvaluationRecordFromJson(json));
  return ToEvaluationInfo(record, options_.state_dir + "/evaluations/" + id + "/report.html");
}

absl::StatusOr<ReviewExport> ServiceCoreImpl::ExportReviewSample(const ReviewExportInput& input) {
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json json, StoredRecordJson(input.evaluation_id));
  QLORAD_ASSIGN_OR_RETURN(eval::EvaluationRecord record, eval::EvaluationRecordFromJson(json));
  if (!record.adapter)
    return absl::FailedPreconditionError(absl::StrCat("evaluation '", input.evaluation_id,
                                                      "' has no adapter outputs to review (hint: evaluate with an adapter)"));
  QLORAD_ASSIGN_OR_RETURN(HoldoutItems items, ReadHoldout(*datasets_, record.dataset_id,
                                                          static_cast<int64_t>(record.example_ids.size())));
  if (items.ids != record.example_ids)
    return absl::FailedPreconditionError(absl::StrCat("dataset '", record.dataset_id, "' hold-out no longer matches the evaluation"));
  std::vector<eval::ReviewItem> holdout;
  for (size_t i = 0; i < items.ids.size(); ++i)
    holdout.push_back({items.ids[i], items.inputs[i].empty() ? items.prompts[i] : items.prompts[i] + "\n\n" + items.inputs[i],
                       record.references[i], record.baseline.outputs[i], record.adapter->outputs[i]});
  eval::ReviewExportOptions options;
  options.sample_size = input.sample_size;
  options.seed = input.seed;
  options.blind = input.blind;
  QLORAD_ASSIGN_OR_RETURN(eval::ReviewSample sample, eval::SelectReviewSample(holdout, options));
  QLORAD_RETURN_IF_ERROR(store_->PutReviewSample(input.evaluation_id, eval::ReviewSampleToJson(sample), Now()));
  QLORAD_RETURN_IF_ERROR(Audit(input.actor, "export_review_sample", "evaluation:" + input.evaluation_id,
                               {{"items", sample.items.size()}, {"blind", sample.blind}, {"seed", sample.seed}}));
  return ReviewExport{eval::ReviewSampleToCsv(sample), eval::ReviewSampleToJsonl(sample), sample.note,
                      static_cast<int64_t>(sample.items.size()), sample.blind};
}

absl::StatusOr<nlohmann::json> ServiceCoreImpl::ImportReviews(const std::string& evaluation_id,
                                                             const std::vector<ReviewerFile>& files, const std::string& actor) {
  if (files.empty()) return absl::InvalidArgumentError("files: at least one reviewer file is required");
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json sample_json, store_->GetReviewSample(evaluation_id));
  QLORAD_ASSIGN_OR_RETURN(eval::ReviewSample sample, eval::ReviewSampleFromJson(sample_json));
  std::vector<eval::Rating> ratings;
  for (const ReviewerFile& file : files) {
    if (file.reviewer.empty()) return absl::InvalidArgumentError("files.reviewer: must name the reviewer");
    absl::StatusOr<std::vector<eval::Rating>> parsed =
        file.format == "jsonl" ? eval::ImportRatingsJsonl(sample, file.reviewer, file.content)
        : file.format == "csv" || file.format.empty()
            ? eval::ImportRatingsCsv(sample, file.reviewer, file.content)
            : absl::InvalidArgumentError(absl::StrCat("files.format: '", file.format, "' is not csv or jsonl"));
    if (!parsed.ok())
      return absl::Status(parsed.status().code(), absl::StrCat("reviewer '", file.reviewer, "': ", parsed.status().message()));
    ratings.insert(ratings.end(), parsed->begin(), parsed->end());
  }
  QLORAD_ASSIGN_OR_RETURN(eval::ReviewSummary summary, eval::SummariseReview(ratings));
  nlohmann::json section = eval::ReviewRecordSection(sample, &summary);
  QLORAD_RETURN_IF_ERROR(store_->AddReview(evaluation_id, section, Now()));
  QLORAD_RETURN_IF_ERROR(Audit(actor, "import_reviews", "evaluation:" + evaluation_id,
                               {{"reviewers", summary.reviewers}, {"ratings", summary.ratings}}));
  return section;
}

}  // namespace qlorad::service
