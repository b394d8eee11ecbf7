// JobQueue::RunJob: one training job on a worker thread — RunTraining with the job's
// checkpoint directory (so a restarted daemon resumes it), progress events, cancellation,
// the drift profile and registration of the finished adapter (name@version, lifecycle
// state 'trained') through the queue's callbacks.
#include "core/service/job_queue.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "core/service/ids.h"
#include "core/train/multi_device_run.h"
#include "core/train/training_run.h"
#include "core/util/path_name.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

nlohmann::json DpoJson(const DpoMetrics& m) {
  return {{"pairs", m.pairs}, {"loss", m.loss}, {"chosen_reward", m.chosen_reward},
          {"rejected_reward", m.rejected_reward}, {"margin", m.margin}, {"accuracy", m.accuracy}};
}

// A progress event's JSON; a DPO job's also carries "dpo" (the step's pairs) and, from
// its first evaluation on, "dpo_eval" (kept in the job's progress between evaluations).
nlohmann::json ProgressJson(const TrainingEvent& e, const nlohmann::json& previous) {
  nlohmann::json out = {{"step", e.step}, {"total_steps", e.total_steps}, {"epoch", e.epoch}, {"loss", e.loss},
          {"learning_rate", e.learning_rate}, {"grad_norm", e.grad_norm}, {"tokens_per_second", e.tokens_per_second},
          {"elapsed_seconds", e.elapsed_seconds}, {"eta_seconds", e.eta_seconds}, {"eval_loss", e.eval_loss}};
  if (!e.dpo) return out;
  out["dpo"] = DpoJson(e.dpo_step);
  if (e.eval_loss >= 0) {
    out["dpo_eval"] = DpoJson(e.dpo_eval);
  } else if (previous.is_object() && previous.contains("dpo_eval")) {
    out["dpo_eval"] = previous["dpo_eval"];
  }
  return out;
}

bool IsRankLoss(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

// Moves the complete adapter written into `partial` to `final_dir` (replacing an
// unregistered one of an earlier attempt of the same job) with one rename.
absl::Status PlaceAdapter(const std::string& partial, const std::string& final_dir) {
  std::error_code ec;
  std::filesystem::remove_all(final_dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot remove the previous attempt's adapter", final_dir);
  std::filesystem::rename(partial, final_dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot move the adapter into place", final_dir);
  return SyncDirectory(std::filesystem::path(final_dir).parent_path().string());
}

absl::StatusOr<TrainingRunSpec> SpecFromJob(const JobRow& job) {
  TrainingRunSpec spec;
  QLORAD_ASSIGN_OR_RETURN(spec.options, TrainingOptionsFromJson(job.spec));
  return spec;
}

}  // namespace

void JobQueue::RunJob(JobRow job, const std::vector<int>& slots) {
  auto spec = SpecFromJob(job);
  if (!spec.ok()) {
    (void)FinishJob(job, "failed", spec.status().ToString());
    return;
  }
  const absl::StatusOr<std::string> job_path = PathInside(options_.state_dir + "/jobs", "job_id", job.id);
  if (!job_path.ok()) {
    (void)FinishJob(job, "failed", job_path.status().ToString());
    return;
  }
  const std::string& job_dir = *job_path;
  spec->model_dir = options_.base_model_dir;
  spec->dataset_root = datasets_->root();
  // The adapter is written into adapter.partial and renamed to adapter once complete: a
  // failed save (a full volume: RESOURCE_EXHAUSTED naming the file) leaves no half adapter.
  const std::string adapter_dir = job_dir + "/adapter";
  spec->output_dir = job_dir + "/adapter.partial";
  std::error_code ec;
  std::filesystem::remove_all(spec->output_dir, ec);
  std::vector<std::string> devices;
  for (int slot : slots) devices.push_back(slot_devices_[slot]);
  const nlohmann::json held = job.progress.value("devices", nlohmann::json::array());
  const int requeues = job.progress.value("requeues", 0);
  spec->checkpoints = {job_dir + "/checkpoints", options_.checkpoint_every_steps, 2};
  spec->adapter_metadata = {{"qlorad_job", job.id}};
  bool user_cancelled = false;
  auto result = RunTrainingOnDevices(*spec, devices, [&](const TrainingEvent& e) {
    job.progress = ProgressJson(e, job.progress);
    job.progress["devices"] = held;
    if (requeues > 0) job.progress["requeues"] = requeues;
    (void)store_->UpdateJob(job);
    nlohmann::json event = job.progress;
    event["type"] = "progress";
    (void)AppendEvent(job.id, event);
    if (!e.checkpoint_path.empty())
      (void)AppendEvent(job.id, {{"type", "checkpoint"}, {"step", e.step}, {"path", e.checkpoint_path}});
    absl::MutexLock lock(&mu_);
    user_cancelled = cancel_requested_.count(job.id) > 0;
    return !user_cancelled && !stopping_;
  }, absl::Seconds(options_.collective_timeout_seconds));
  if (result.ok() && !result->summary.cancelled) {
    absl::Status placed = PlaceAdapter(spec->output_dir, adapter_dir);
    if (!placed.ok()) result = placed;
  }
  std::filesystem::remove_all(spec->output_dir, ec);
  spec->output_dir = adapter_dir;
  if (!result.ok() && devices.size() > 1 && IsRankLoss(result.status()) && requeues < 2) {
    // A rank stopped answering: the job goes back to the queue and resumes from its last
    // checkpoint on whichever devices are free then (at most twice).
    job.progress["requeues"] = requeues + 1;
    (void)AppendEvent(job.id, {{"type", "error"}, {"message", result.status().ToString()}});
    (void)FinishJob(job, "queued", "");
    return;
  }
  if (!result.ok()) {
    (void)FinishJob(job, "failed", result.status().ToString());
    return;
  }
  if (result->summary.cancelled) {
    // A drain leaves the job queued: the next start resumes it from the checkpoint just written.
    (void)FinishJob(job, user_cancelled ? "cancelled" : "queued", "");
    return;
  }
  absl::Status profiled = profile_(spec->options.dataset_id, spec->output_dir);
  if (!profiled.ok())
    (void)AppendEvent(job.id, {{"type", "status"}, {"status", "running"},
                               {"message", "no drift profile: " + profiled.ToString()}});
  const std::string name = job.spec.value("adapter_name", "adapter");
  TrainedAdapter trained{job.id, job.actor, name, spec->output_dir, result->base_fingerprint, spec->options.dataset_id,
                         result->record.value("final_loss", 0.0)};
  absl::StatusOr<std::string> registered = register_adapter_(trained);
  if (registered.ok()) job.adapter_id = *registered;
  if (!registered.ok()) std::filesystem::remove_all(adapter_dir, ec);  // never listed: not kept either
  (void)FinishJob(job, registered.ok() ? "succeeded" : "failed", registered.ok() ? "" : registered.status().ToString());
}

}  // namespace qlorad::service
