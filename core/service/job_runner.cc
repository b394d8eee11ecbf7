// ServiceCore: one training job on a worker thread — RunTraining with the job's
// checkpoint directory (so a restarted daemon resumes it), progress events, cancellation,
// and registration of the finished adapter (name@version, lifecycle state 'trained').
#include <mutex>

#include "absl/strings/str_cat.h"
#include "core/service/core_impl.h"
#include "core/store/adapter_lifecycle.h"
#include "core/tokenizer/prompt_format.h"
#include "core/train/examples.h"
#include "core/train/training_run.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

nlohmann::json ProgressJson(const TrainingEvent& e) {
  return {{"step", e.step}, {"total_steps", e.total_steps}, {"epoch", e.epoch}, {"loss", e.loss},
          {"learning_rate", e.learning_rate}, {"grad_norm", e.grad_norm}, {"tokens_per_second", e.tokens_per_second},
          {"elapsed_seconds", e.elapsed_seconds}, {"eta_seconds", e.eta_seconds}, {"eval_loss", e.eval_loss}};
}

absl::StatusOr<TrainingRunSpec> SpecFromJob(const JobRow& job) {
  TrainingRunSpec spec;
  QLORAD_ASSIGN_OR_RETURN(spec.options, TrainingOptionsFromJson(job.spec));
  return spec;
}

}  // namespace

absl::Status ServiceCoreImpl::BuildDriftProfile(const std::string& dataset_id, const std::string& dir) {
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<data::SplitReader> reader, datasets_->OpenTrain(dataset_id));
  std::vector<std::vector<int64_t>> prompts;
  data::Example example;
  while (true) {
    QLORAD_ASSIGN_OR_RETURN(bool more, reader->Next(&example));
    if (!more) break;
    QLORAD_ASSIGN_OR_RETURN(TrainingExample rendered,
                            RenderTrainingExample(example, engine_->prompt_format(), engine_->tokenizer()));
    // What a request carries: everything before the completion.
    std::vector<int64_t> prompt(rendered.ids.begin(), rendered.ids.begin() + tokenizer::PromptLength(rendered.trainable));
    if (!prompt.empty()) prompts.push_back(std::move(prompt));
  }
  return drift_->BuildProfile(prompts, dir + "/drift_profile.json");
}

void ServiceCoreImpl::RunJob(JobRow job) {
  auto spec = SpecFromJob(job);
  if (!spec.ok()) {
    (void)FinishJob(job, "failed", spec.status().ToString());
    return;
  }
  const std::string job_dir = options_.state_dir + "/jobs/" + job.id;
  spec->model_dir = options_.base_model_dir;
  spec->dataset_root = datasets_->root();
  spec->output_dir = job_dir + "/adapter";
  spec->device = options_.device;
  spec->checkpoints = {job_dir + "/checkpoints", options_.checkpoint_every_steps, 2};
  spec->adapter_metadata = {{"qlorad_job", job.id}};
  bool user_cancelled = false;
  auto result = RunTraining(*spec, [&](const TrainingEvent& e) {
    job.progress = ProgressJson(e);
    (void)store_->UpdateJob(job);
    nlohmann::json event = job.progress;
    event["type"] = "progress";
    (void)AppendEvent(job.id, event);
    if (!e.checkpoint_path.empty())
      (void)AppendEvent(job.id, {{"type", "checkpoint"}, {"step", e.step}, {"path", e.checkpoint_path}});
    std::lock_guard<std::mutex> lock(jobs_mu_);
    user_cancelled = cancel_requested_.count(job.id) > 0;
    return !user_cancelled && !stopping_;
  });
  if (!result.ok()) {
    (void)FinishJob(job, "failed", result.status().ToString());
    return;
  }
  if (result->summary.cancelled) {
    // A drain leaves the job queued: the next start resumes it from the checkpoint just written.
    (void)FinishJob(job, user_cancelled ? "cancelled" : "queued", "");
    return;
  }
  absl::Status profiled = BuildDriftProfile(spec->options.dataset_id, spec->output_dir);
  if (!profiled.ok())
    (void)AppendEvent(job.id, {{"type", "status"}, {"status", "running"},
                               {"message", "no drift profile: " + profiled.ToString()}});
  const std::string name = job.spec.value("adapter_name", "adapter");
  absl::Status registered = [&]() -> absl::Status {
    std::lock_guard<std::mutex> lock(commit_mu_);  // versions are taken and registered one at a time (imports too)
    QLORAD_ASSIGN_OR_RETURN(int64_t version, store_->NextAdapterVersion(name));
    AdapterRow row{absl::StrCat(name, "@", version), name, version, job.id, spec->output_dir, result->base_fingerprint,
                   spec->options.dataset_id, Now(), false};
    QLORAD_RETURN_IF_ERROR(store_->InsertAdapter(row));
    QLORAD_RETURN_IF_ERROR(store_->WithStore([&](store::Store& s) {
      store::AdapterLifecycle lifecycle(&s);
      return lifecycle.RegisterTrained(row.id, job.actor.empty() ? "system" : job.actor,
                                       {{"job_id", job.id}, {"dataset_id", spec->options.dataset_id},
                                        {"final_loss", result->record.value("final_loss", 0.0)}});
    }));
    job.adapter_id = row.id;
    return absl::OkStatus();
  }();
  (void)FinishJob(job, registered.ok() ? "succeeded" : "failed", registered.ok() ? "" : registered.ToString());
}

}  // namespace qlorad::service
