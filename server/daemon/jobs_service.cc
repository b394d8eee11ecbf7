#include "server/daemon/jobs_service.h"

namespace qlorad::server {
namespace {

void ProgressToProto(const nlohmann::json& p, v1::Progress* out) {
  if (!p.is_object()) return;
  out->set_step(p.value("step", int64_t{0}));
  out->set_total_steps(p.value("total_steps", int64_t{0}));
  out->set_epoch(p.value("epoch", int64_t{0}));
  out->set_loss(p.value("loss", 0.0));
  out->set_learning_rate(p.value("learning_rate", 0.0));
  out->set_grad_norm(p.value("grad_norm", 0.0));
  out->set_tokens_per_second(p.value("tokens_per_second", 0.0));
  out->set_elapsed_seconds(p.value("elapsed_seconds", 0.0));
  out->set_eta_seconds(p.value("eta_seconds", 0.0));
}

void JobToProto(const service::JobInfo& j, v1::Job* out) {
  out->set_job_id(j.id);
  out->set_status(j.status);
  out->set_created_at(j.created_at);
  out->set_started_at(j.started_at);
  out->set_finished_at(j.finished_at);
  out->set_error(j.error);
  out->set_adapter_id(j.adapter_id);
  out->set_priority(static_cast<int32_t>(j.priority));
  out->set_spec_json(j.spec.dump());
  out->set_submitted_by(j.actor);
  ProgressToProto(j.progress, out->mutable_progress());
}

service::JobSpec SpecFromProto(const v1::CreateJobRequest& r) {
  service::JobSpec spec;
  spec.dataset_id = r.dataset_id();
  spec.base_model = r.base_model();
  spec.adapter_name = r.adapter_name();
  spec.quantize = r.quantize().empty() ? "nf4" : r.quantize();
  spec.priority = r.priority();
  const v1::LoraSettings& l = r.lora();
  if (l.r() != 0) spec.lora["r"] = l.r();
  if (l.alpha() != 0) spec.lora["alpha"] = l.alpha();
  if (l.has_dropout()) spec.lora["dropout"] = l.dropout();
  if (l.target_modules_size() > 0)
    spec.lora["target_modules"] = std::vector<std::string>(l.target_modules().begin(), l.target_modules().end());
  if (l.use_rslora()) spec.lora["use_rslora"] = true;
  const v1::Hyperparameters& h = r.hyperparameters();
  if (h.epochs() != 0) spec.trainer["epochs"] = h.epochs();
  if (h.batch_size() != 0) spec.trainer["batch_size"] = h.batch_size();
  if (h.gradient_accumulation() != 0) spec.trainer["gradient_accumulation"] = h.gradient_accumulation();
  if (h.learning_rate() != 0) spec.trainer["learning_rate"] = h.learning_rate();
  if (h.weight_decay() != 0) spec.trainer["weight_decay"] = h.weight_decay();
  if (!h.schedule().empty()) spec.trainer["schedule"] = h.schedule();
  if (h.has_warmup_ratio()) spec.trainer["warmup_ratio"] = h.warmup_ratio();
  if (h.max_grad_norm() != 0) spec.trainer["max_grad_norm"] = h.max_grad_norm();
  if (h.max_seq_len() != 0) spec.trainer["max_seq_len"] = h.max_seq_len();
  if (h.seed() != 0) spec.trainer["seed"] = h.seed();
  if (h.gradient_checkpointing()) spec.trainer["gradient_checkpointing"] = true;
  if (h.eval_fraction() != 0) spec.trainer["eval_fraction"] = h.eval_fraction();
  if (h.eval_every_steps() != 0) spec.trainer["eval_every_steps"] = h.eval_every_steps();
  if (h.early_stopping_patience() != 0) spec.trainer["early_stopping_patience"] = h.early_stopping_patience();
  if (h.early_stopping_min_delta() != 0) spec.trainer["early_stopping_min_delta"] = h.early_stopping_min_delta();
  return spec;
}

void EventToProto(const service::JobEvent& e, v1::JobEvent* out) {
  out->set_sequence(e.seq);
  out->set_at(e.at);
  const nlohmann::json& j = e.event;
  out->set_type(j.value("type", ""));
  out->set_status(j.value("status", ""));
  out->set_error(j.value("error", ""));
  out->set_message(j.value("message", ""));
  out->set_adapter_id(j.value("adapter_id", ""));
  if (out->type() == "progress") ProgressToProto(j, out->mutable_progress());
  if (out->type() == "checkpoint") {
    out->set_checkpoint_path(j.value("path", ""));
    out->mutable_progress()->set_step(j.value("step", int64_t{0}));
  }
}

}  // namespace

grpc::Status JobsService::CreateJob(grpc::ServerContext* context, const v1::CreateJobRequest* request, v1::Job* response) {
  return HandleRpc(d_, context, "Jobs", "CreateJob", Permission::kTrain, [&](const Principal& who) {
    auto job = d_.core->SubmitJob(SpecFromProto(*request), who.name);
    if (!job.ok()) return ToGrpcStatus(job.status());
    JobToProto(*job, response);
    return grpc::Status::OK;
  });
}

grpc::Status JobsService::GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request, v1::Job* response) {
  return HandleRpc(d_, context, "Jobs", "GetJob", Permission::kRead, [&](const Principal&) {
    auto job = d_.core->GetJob(request->job_id());
    if (!job.ok()) return ToGrpcStatus(job.status());
    JobToProto(*job, response);
    return grpc::Status::OK;
  });
}

grpc::Status JobsService::ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                                   v1::ListJobsResponse* response) {
  return HandleRpc(d_, context, "Jobs", "ListJobs", Permission::kRead, [&](const Principal&) {
    std::string next;
    auto jobs = d_.core->ListJobs({request->page_size(), request->page_token()}, &next);
    if (!jobs.ok()) return ToGrpcStatus(jobs.status());
    for (const auto& job : *jobs) JobToProto(job, response->add_jobs());
    response->set_next_page_token(next);
    return grpc::Status::OK;
  });
}

grpc::Status JobsService::CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request, v1::Job* response) {
  return HandleRpc(d_, context, "Jobs", "CancelJob", Permission::kTrain, [&](const Principal& who) {
    auto job = d_.core->CancelJob(request->job_id(), who.name);
    if (!job.ok()) return ToGrpcStatus(job.status());
    JobToProto(*job, response);
    return grpc::Status::OK;
  });
}

grpc::Status JobsService::WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                                   grpc::ServerWriter<v1::JobEvent>* writer) {
  return HandleRpc(d_, context, "Jobs", "WatchJob", Permission::kRead, [&](const Principal&) {
    int64_t after = request->after_sequence();
    while (!context->IsCancelled()) {
      bool terminal = false;
      auto events = d_.core->WaitJobEvents(request->job_id(), after, 1000, &terminal);
      if (!events.ok()) return ToGrpcStatus(events.status());
      for (const auto& event : *events) {
        v1::JobEvent out;
        EventToProto(event, &out);
        if (!writer->Write(out)) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
        after = event.seq;
      }
      if (terminal) return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
  });
}

}  // namespace qlorad::server
