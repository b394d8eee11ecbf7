#include "server/daemon/inference_service.h"

namespace qlorad::server {
namespace {

absl::StatusOr<service::GenerateInput> InputFromProto(const v1::GenerateRequest& r) {
  service::GenerateInput in;
  in.adapter = r.adapter();
  in.prompt = r.prompt();
  in.input = r.input();
  in.raw_prompt = r.raw_prompt();
  in.max_new_tokens = r.max_new_tokens() == 0 ? service::kDefaultMaxNewTokens : r.max_new_tokens();
  in.temperature = r.temperature();
  in.top_p = r.top_p() == 0 ? 1.0 : r.top_p();
  in.top_k = r.top_k();
  in.seed = r.seed();
  in.stop.assign(r.stop().begin(), r.stop().end());
  constrain::GuidedFields guided;
  guided.json_schema = r.guided_json();
  guided.json_object = r.guided_json_object();
  guided.choice.assign(r.guided_choice().begin(), r.guided_choice().end());
  guided.regex = r.guided_regex();
  auto constraint = constrain::ConstraintFromFields(guided);
  if (!constraint.ok()) return constraint.status();
  in.constraint = std::move(*constraint);
  return in;
}

void EvaluationToProto(const service::EvaluationInfo& e, v1::Evaluation* out) {
  out->set_evaluation_id(e.id);
  out->set_dataset_id(e.dataset_id);
  out->set_adapter_id(e.adapter_id);
  out->set_created_at(e.created_at);
  out->set_headline_metric(e.headline_metric);
  out->set_baseline_value(e.baseline_value);
  out->set_adapter_value(e.adapter_value);
  out->set_delta_lower(e.delta_low);
  out->set_delta_upper(e.delta_high);
  out->set_has_adapter(e.has_adapter);
  out->set_report_path(e.report_path);
  out->set_record_json(e.record.dump());
}

// What a reviewer may not see of an evaluation, since it would unblind a review: each
// system's per-example outputs, the error sample (outputs side by side), the review
// sample (its A/B key) and the individual judgements. The metrics and summary stay.
void RedactForReviewer(v1::Evaluation* out) {
  nlohmann::json record = nlohmann::json::parse(out->record_json(), nullptr, /*allow_exceptions=*/false);
  if (!record.is_object()) return out->clear_record_json();
  for (const char* system : {"baseline", "adapter"})
    if (record.contains(system) && record[system].is_object()) record[system].erase("outputs");
  record.erase("error_sample");
  if (record.contains("review") && record["review"].is_object()) {
    record["review"].erase("sample");
    if (record["review"].contains("summary") && record["review"]["summary"].is_object())
      record["review"]["summary"].erase("judgements");
  }
  out->set_record_json(record.dump());
}

}  // namespace

grpc::Status InferenceService::Generate(grpc::ServerContext* c, const v1::GenerateRequest* r, v1::GenerateResponse* out) {
  return HandleRpc(d_, c, "Inference", "Generate", Permission::kInference, [&](const Principal&) {
    auto input = InputFromProto(*r);
    if (!input.ok()) return ToGrpcStatus(input.status());
    auto result = d_.core->Generate(*input, [&](const std::string&, int64_t) { return !c->IsCancelled(); });
    if (!result.ok()) return ToGrpcStatus(result.status());
    if (result->finish_reason == "cancelled") return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
    if (observer_) observer_(*result, r->adapter());
    out->set_text(result->text);
    for (int64_t t : result->tokens) out->add_tokens(t);
    out->set_finish_reason(result->finish_reason);
    out->set_adapter_id(result->adapter_id);
    out->set_prompt_tokens(result->prompt_tokens);
    out->set_time_to_first_token_seconds(result->time_to_first_token_seconds);
    out->set_total_seconds(result->total_seconds);
    return grpc::Status::OK;
  });
}

grpc::Status InferenceService::GenerateStream(grpc::ServerContext* c, const v1::GenerateRequest* r,
                                              grpc::ServerWriter<v1::GenerateChunk>* writer) {
  return HandleRpc(d_, c, "Inference", "GenerateStream", Permission::kInference, [&](const Principal&) {
    auto input = InputFromProto(*r);
    if (!input.ok()) return ToGrpcStatus(input.status());
    auto result = d_.core->Generate(*input, [&](const std::string& piece, int64_t token) {
      v1::GenerateChunk chunk;
      chunk.set_text(piece);
      chunk.set_token(token);
      return !c->IsCancelled() && writer->Write(chunk);  // a failed write = the client went away
    });
    if (!result.ok()) return ToGrpcStatus(result.status());
    if (result->finish_reason == "cancelled") return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
    if (observer_) observer_(*result, r->adapter());
    v1::GenerateChunk last;
    last.set_finish_reason(result->finish_reason);
    last.set_adapter_id(result->adapter_id);
    writer->Write(last);
    return grpc::Status::OK;
  });
}

grpc::Status InferenceService::Classify(grpc::ServerContext* c, const v1::ClassifyRequest* r, v1::ClassifyResponse* out) {
  return HandleRpc(d_, c, "Inference", "Classify", Permission::kInference, [&](const Principal&) {
    auto result = d_.core->Classify(r->adapter(), r->text(), {r->labels().begin(), r->labels().end()});
    if (!result.ok()) return ToGrpcStatus(result.status());
    out->set_predicted(result->predicted);
    for (const auto& l : result->labels) out->add_labels(l);
    for (double v : result->log_likelihoods) out->add_log_likelihoods(v);
    out->set_adapter_id(result->adapter_id);
    return grpc::Status::OK;
  });
}

grpc::Status EvaluationsService::CreateEvaluation(grpc::ServerContext* c, const v1::CreateEvaluationRequest* r,
                                                  v1::Evaluation* out) {
  return HandleRpc(d_, c, "Evaluations", "CreateEvaluation", Permission::kTrain, [&](const Principal& who) {
    auto e = d_.core->Evaluate({r->dataset_id(), r->adapter(), r->max_examples(), who.name,
                                r->scoring().empty() ? "log_likelihood" : r->scoring()});
    if (!e.ok()) return ToGrpcStatus(e.status());
    EvaluationToProto(*e, out);
    return grpc::Status::OK;
  });
}

grpc::Status EvaluationsService::GetEvaluation(grpc::ServerContext* c, const v1::GetEvaluationRequest* r, v1::Evaluation* out) {
  return HandleRpc(d_, c, "Evaluations", "GetEvaluation", Permission::kRead, [&](const Principal& who) {
    auto e = d_.core->GetEvaluation(r->evaluation_id());
    if (!e.ok()) return ToGrpcStatus(e.status());
    EvaluationToProto(*e, out);
    if (who.role == Role::kReviewer) RedactForReviewer(out);
    return grpc::Status::OK;
  });
}

grpc::Status EvaluationsService::ExportReviewSample(grpc::ServerContext* c, const v1::ExportReviewSampleRequest* r,
                                                    v1::ReviewSample* out) {
  return HandleRpc(d_, c, "Evaluations", "ExportReviewSample", Permission::kTrain, [&](const Principal& who) {
    service::ReviewExportInput in{r->evaluation_id(), r->sample_size() == 0 ? 50 : r->sample_size(),
                                  r->seed() == 0 ? 1 : r->seed(), r->blind(), who.name};
    auto e = d_.core->ExportReviewSample(in);
    if (!e.ok()) return ToGrpcStatus(e.status());
    out->set_csv(e->csv);
    out->set_jsonl(e->jsonl);
    out->set_items(e->items);
    out->set_blind(e->blind);
    out->set_note(e->note);
    return grpc::Status::OK;
  });
}

grpc::Status EvaluationsService::ImportReviews(grpc::ServerContext* c, const v1::ImportReviewsRequest* r, v1::ReviewSummary* out) {
  return HandleRpc(d_, c, "Evaluations", "ImportReviews", Permission::kTrain, [&](const Principal& who) {
    std::vector<service::ReviewerFile> files;
    for (const auto& f : r->files()) files.push_back({f.reviewer(), f.format(), f.content()});
    auto summary = d_.core->ImportReviews(r->evaluation_id(), files, who.name);
    if (!summary.ok()) return ToGrpcStatus(summary.status());
    out->set_summary_json(summary->dump());
    return grpc::Status::OK;
  });
}

}  // namespace qlorad::server
