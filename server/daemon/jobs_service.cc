#include "server/daemon/jobs_service.h"

namespace qlorad::server {
namespace {

void DpoToProto(const nlohmann::json& m, v1::DpoMetrics* out) {
  out->set_pairs(m.value("pairs", int64_t{0}));
  out->set_loss(m.value("loss", 0.0));
  out->set_chosen_reward(m.value("chosen_reward", 0.0));
  out->set_rejected_reward(m.value("rejected_reward", 0.0));
  out->set_margin(m.value("margin", 0.0));
  out->set_accuracy(m.value("accuracy", 0.0));
}

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
  if (auto it = p.find("dpo"); it != p.end() && it->is_object()) DpoToProto(*it, out->mutable_dpo());
  if (auto it = p.find("dpo_eval"); it != p.end() && it->is_object()) DpoToProto(*it, out->mutable_dpo_eval());
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
  for (const std::string& d : j.devices) out->add_devices(d);
}

// proto3 scalars: 0 / "" means unset, so the field keeps TrainingOptions' default.
template <typename Field, typename Value>
void SetIfGiven(Field& field, const Value& value) {
  if (value != Value{}) field = value;
}

// CreateJobRequest -> typed options; SubmitJob validates them (errors name lora.* / hyperparameters.*).
service::JobSpec SpecFromProto(const v1::CreateJobRequest& r) {
  service::JobSpec spec;
  spec.base_model = r.base_model();
  spec.adapter_name = r.adapter_name();
  spec.priority = r.priority();
  spec.devices = r.devices() > 0 ? r.devices() : 1;
  TrainingOptions& t = spec.training;
  t.dataset_id = r.dataset_id();
  SetIfGiven(t.quantize, r.quantize());
  SetIfGiven(t.method, r.method());
  const v1::LoraSettings& l = r.lora();
  SetIfGiven(t.lora.r, int64_t{l.r()});
  t.lora.alpha = l.alpha() != 0 ? l.alpha() : DefaultLoraAlpha(t.lora.r);
  if (l.has_dropout()) t.lora.dropout = l.dropout();
  if (l.target_modules_size() > 0) t.lora.target_modules.assign(l.target_modules().begin(), l.target_modules().end());
  t.lora.use_rslora = l.use_rslora();
  t.lora.use_dora = l.use_dora();
  SetIfGiven(t.lora.init, l.init());
  SetIfGiven(t.lora.loftq_iterations, int64_t{l.loftq_iterations()});
  const v1::Hyperparameters& h = r.hyperparameters();
  TrainerOptions& o = t.trainer;
  SetIfGiven(o.epochs, int64_t{h.epochs()});
  SetIfGiven(o.batch_size, int64_t{h.batch_size()});
  SetIfGiven(o.gradient_accumulation, int64_t{h.gradient_accumulation()});
  SetIfGiven(o.learning_rate, h.learning_rate());
  SetIfGiven(o.weight_decay, h.weight_decay());
  SetIfGiven(o.loraplus_lr_ratio, h.loraplus_lr_ratio());
  SetIfGiven(o.schedule, h.schedule());
  if (h.has_warmup_ratio()) o.warmup_ratio = h.warmup_ratio();
  SetIfGiven(o.max_grad_norm, h.max_grad_norm());
  SetIfGiven(o.max_seq_len, int64_t{h.max_seq_len()});
  SetIfGiven(o.seed, h.seed());
  o.gradient_checkpointing = h.gradient_checkpointing();
  SetIfGiven(o.checkpoint_keep, h.checkpoint_keep());
  o.packing = h.packing();
  SetIfGiven(o.dpo_beta, h.dpo_beta());
  SetIfGiven(o.eval_fraction, h.eval_fraction());
  SetIfGiven(o.eval_every_steps, int64_t{h.eval_every_steps()});
  SetIfGiven(o.early_stopping_patience, int64_t{h.early_stopping_patience()});
  SetIfGiven(o.early_stopping_min_delta, h.early_stopping_min_delta());
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
