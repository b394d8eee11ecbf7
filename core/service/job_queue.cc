// JobQueue: submission checks, the priority queue, worker threads, cancellation and the
// event stream (the training run itself: training_job.cc).
#include "core/service/job_queue.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/quant/quantize_setting.h"
#include "core/service/audit.h"
#include "core/service/ids.h"
#include "core/service/paging.h"
#include "core/train/training_options.h"
#include "core/train/training_run.h"
#include "core/util/path_name.h"
#include "core/util/status_macros.h"

namespace qlorad::service {

absl::Status ValidateAdapterName(const std::string& name, absl::string_view field) {
  return ValidatePathName(field, name, kAdapterNameRules);
}

std::vector<std::string> DeviceSlotNames(const std::vector<std::string>& devices) {
  std::vector<std::string> names;
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto repeats = std::count(devices.begin(), devices.end(), devices[i]);
    const auto index = std::count(devices.begin(), devices.begin() + i, devices[i]);
    names.push_back(repeats > 1 ? absl::StrCat(devices[i], "#", index) : devices[i]);
  }
  return names;
}

namespace {

bool Terminal(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled";
}

}  // namespace

JobQueue::JobQueue(const CoreOptions& options, DaemonStore* store, store::SharedStore* db, data::DatasetStore* datasets,
                   ProfileFn profile, RegisterFn register_adapter, FindAdapterFn adapter_of_job)
    : options_(options), store_(store), db_(db), datasets_(datasets), profile_(std::move(profile)),
      register_adapter_(std::move(register_adapter)), adapter_of_job_(std::move(adapter_of_job)),
      slot_devices_(options.training_devices.empty() ? std::vector<std::string>{options.device}
                                                     : options.training_devices),
      slot_names_(DeviceSlotNames(slot_devices_)), slot_holder_(slot_devices_.size()) {}

absl::Status JobQueue::Recover() {
  QLORAD_ASSIGN_OR_RETURN(std::vector<JobRow> interrupted, store_->JobsWithStatus("running"));
  for (JobRow& job : interrupted) {
    // Killed after its adapter was registered (one transaction) but before the job row
    // said so: roll forward instead of training a second version.
    QLORAD_ASSIGN_OR_RETURN(std::optional<std::string> registered, adapter_of_job_(job.id));
    if (registered) {
      job.adapter_id = *registered;
      QLORAD_RETURN_IF_ERROR(FinishJob(job, "succeeded", ""));
      continue;
    }
    job.status = "queued";
    QLORAD_RETURN_IF_ERROR(store_->UpdateJobWithEvent(
        job, Now(), {{"type", "status"}, {"status", "queued"},
                     {"message", "daemon restarted: the job resumes from its last checkpoint"}}));
  }
  return absl::OkStatus();
}

void JobQueue::StartWorkers(int count) {
  const int workers = std::max({1, count, static_cast<int>(slot_devices_.size())});
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

void JobQueue::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_.exchange(true)) return;
  }
  jobs_cv_.SignalAll();
  EventsAppended();  // wakes every WaitJobEvents: they return on stopping_
  for (auto& worker : workers_) worker.join();
  workers_.clear();
}

absl::Status JobQueue::Audit(const std::string& actor, const std::string& action, const std::string& subject,
                             const nlohmann::json& details) {
  return service::Audit(*db_, actor, action, subject, details);
}

JobInfo JobQueue::ToJobInfo(const JobRow& row) const {
  JobInfo info{row.id, row.status, row.created_at, row.started_at, row.finished_at, row.error, row.adapter_id,
               row.actor, row.priority, row.spec, row.progress, {}};
  if (row.status == "running" && row.progress.contains("devices") && row.progress["devices"].is_array())
    for (const auto& d : row.progress["devices"]) info.devices.push_back(d.get<std::string>());
  return info;
}

absl::StatusOr<JobInfo> JobQueue::SubmitJob(const JobSpec& spec, const std::string& actor) {
  if (stopping_) return absl::UnavailableError("the daemon is shutting down (hint: retry after it restarts)");
  QLORAD_RETURN_IF_ERROR(spec.training.Validate());  // dataset_id, quantize, lora.*, hyperparameters.*
  QLORAD_RETURN_IF_ERROR(ValidateAdapterName(spec.adapter_name));
  if (!spec.base_model.empty() && spec.base_model != options_.base_model_name)
    return absl::InvalidArgumentError(absl::StrCat("base_model: '", spec.base_model, "' is not served here (available: ",
                                                   options_.base_model_name, ")"));
  if (spec.devices < 1 || spec.devices > static_cast<int64_t>(slot_devices_.size()))
    return absl::InvalidArgumentError(absl::StrCat("devices: ", spec.devices, " requested; this daemon trains on ",
                                                   slot_devices_.size(), " device(s) (hint: 1..", slot_devices_.size(),
                                                   ", or start qlorad with more --devices)"));
  auto dataset = store_->GetDataset(spec.training.dataset_id);
  if (!dataset.ok()) return absl::NotFoundError(absl::StrCat("dataset_id: ", dataset.status().message()));
  if ((dataset->format == "preference") != (spec.training.method == "dpo"))
    return absl::FailedPreconditionError(absl::StrCat(
        "method: '", spec.training.method, "' cannot train on dataset '", spec.training.dataset_id, "' (format ",
        dataset->format, ")", spec.training.method == "dpo"
                                  ? " (hint: dpo needs a preference dataset of {prompt, chosen, rejected} lines)"
                                  : " (hint: a preference dataset trains with method dpo)"));
  QLORAD_ASSIGN_OR_RETURN(int64_t queued, store_->CountJobsWithStatus("queued"));
  if (queued >= options_.max_queued_jobs)
    return absl::ResourceExhaustedError(absl::StrCat("the job queue is full (", queued, " queued; max ",
                                                     options_.max_queued_jobs, ") (hint: retry later)"));
  JobRow row;
  row.id = NewId("job");
  row.status = "queued";
  row.priority = spec.priority;
  row.spec = TrainingOptionsToJson(spec.training);
  row.spec["base_model"] = options_.base_model_name;
  row.spec["adapter_name"] = spec.adapter_name;
  row.spec["devices"] = spec.devices;
  row.created_at = Now();
  row.actor = actor;
  QLORAD_ASSIGN_OR_RETURN(row, store_->InsertJob(row));
  QLORAD_RETURN_IF_ERROR(AppendEvent(row.id, {{"type", "status"}, {"status", "queued"}}));
  QLORAD_RETURN_IF_ERROR(Audit(actor, "submit", "job:" + row.id, row.spec));
  {
    absl::MutexLock lock(&mu_);  // a worker between its queue read and its wait holds mu_
    jobs_cv_.Signal();
  }
  return ToJobInfo(row);
}

absl::StatusOr<JobInfo> JobQueue::GetJob(const std::string& id) {
  QLORAD_RETURN_IF_ERROR(ValidatePathName("job_id", id));  // jobs/<id> is its directory
  QLORAD_ASSIGN_OR_RETURN(JobRow row, store_->GetJob(id));
  return ToJobInfo(row);
}

absl::StatusOr<std::vector<JobInfo>> JobQueue::ListJobs(const Page& page, std::string* next_page_token) {
  QLORAD_ASSIGN_OR_RETURN(int64_t size, ValidatePageSize(page.page_size));
  int64_t after = 0;
  if (!page.page_token.empty() && !absl::SimpleAtoi(page.page_token, &after))
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  QLORAD_ASSIGN_OR_RETURN(std::vector<JobRow> rows, store_->ListJobs(after, size + 1));
  *next_page_token = TrimPage(rows, size) ? absl::StrCat(rows.back().seq) : "";
  std::vector<JobInfo> out;
  for (const JobRow& row : rows) out.push_back(ToJobInfo(row));
  return out;
}

absl::StatusOr<JobInfo> JobQueue::CancelJob(const std::string& id, const std::string& actor) {
  QLORAD_RETURN_IF_ERROR(ValidatePathName("job_id", id));
  QLORAD_ASSIGN_OR_RETURN(JobRow row, store_->GetJob(id));
  if (Terminal(row.status))
    return absl::FailedPreconditionError(absl::StrCat("job ", id, " already ended (", row.status, ")"));
  {
    absl::MutexLock lock(&mu_);
    QLORAD_ASSIGN_OR_RETURN(row, store_->GetJob(id));  // re-read under the queue lock: a worker may have claimed it
    if (Terminal(row.status))  // it ended in between
      return absl::FailedPreconditionError(absl::StrCat("job ", id, " already ended (", row.status, ")"));
    if (running_.count(id)) {
      cancel_requested_.insert(id);  // the worker stops at its next step
    } else if (row.status == "queued") {
      QLORAD_RETURN_IF_ERROR(FinishJob(row, "cancelled", ""));
    }
  }
  QLORAD_RETURN_IF_ERROR(Audit(actor, "cancel", "job:" + id, nlohmann::json::object()));
  QLORAD_ASSIGN_OR_RETURN(row, store_->GetJob(id));
  return ToJobInfo(row);
}

absl::StatusOr<std::vector<JobEvent>> JobQueue::WaitJobEvents(const std::string& id, int64_t after_seq,
                                                                     int64_t timeout_ms, bool* terminal) {
  QLORAD_RETURN_IF_ERROR(ValidatePathName("job_id", id));
  QLORAD_RETURN_IF_ERROR(store_->GetJob(id).status());
  const absl::Time deadline = absl::Now() + absl::Milliseconds(timeout_ms);
  while (true) {
    uint64_t generation;
    {
      absl::MutexLock lock(&events_mu_);
      generation = events_generation_;
    }
    QLORAD_ASSIGN_OR_RETURN(JobRow row, store_->GetJob(id));  // status first: no event can be missed after it
    QLORAD_ASSIGN_OR_RETURN(std::vector<JobEventRow> rows, store_->JobEventsAfter(id, after_seq));
    *terminal = Terminal(row.status);
    if (!rows.empty() || *terminal || absl::Now() >= deadline || stopping_) {
      std::vector<JobEvent> out;
      for (auto& r : rows) out.push_back({r.seq, r.at, std::move(r.event)});
      return out;
    }
    absl::MutexLock lock(&events_mu_);
    const absl::Time wake = std::min(deadline, absl::Now() + absl::Milliseconds(500));
    while (events_generation_ == generation && !stopping_ && absl::Now() < wake)
      events_cv_.WaitWithTimeout(&events_mu_, wake - absl::Now());
  }
}

absl::Status JobQueue::AppendEvent(const std::string& job_id, nlohmann::json event) {
  absl::Status status = store_->AppendJobEvent(job_id, Now(), event).status();
  EventsAppended();
  return status;
}

void JobQueue::EventsAppended() {
  absl::MutexLock lock(&events_mu_);
  ++events_generation_;
  events_cv_.SignalAll();
}

absl::Status JobQueue::FinishJob(JobRow& job, const std::string& status, const std::string& error) {
  job.status = status;
  job.error = error;
  job.finished_at = Terminal(status) ? Now() : "";
  nlohmann::json event = {{"type", "status"}, {"status", status}};
  if (!error.empty()) event["error"] = error;
  if (!job.adapter_id.empty()) event["adapter_id"] = job.adapter_id;
  absl::Status stored = store_->UpdateJobWithEvent(job, Now(), event);
  EventsAppended();
  return stored;
}

std::vector<std::pair<std::string, bool>> JobQueue::DeviceBusy() {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, bool>> out;
  for (size_t i = 0; i < slot_names_.size(); ++i) out.emplace_back(slot_names_[i], !slot_holder_[i].empty());
  return out;
}

std::optional<std::pair<JobRow, std::vector<int>>> JobQueue::ClaimNextJob() {
  auto next = store_->NextQueuedJob();
  if (!next.ok() || !next->has_value()) return std::nullopt;
  JobRow job = std::move(**next);
  const size_t wanted = static_cast<size_t>(std::max<int64_t>(1, job.spec.value("devices", int64_t{1})));
  std::vector<int> slots;
  for (size_t i = 0; i < slot_holder_.size() && slots.size() < wanted; ++i)
    if (slot_holder_[i].empty()) slots.push_back(static_cast<int>(i));
  if (slots.size() < wanted) return std::nullopt;  // the head job waits; nothing overtakes it
  job.status = "running";
  if (job.started_at.empty()) job.started_at = Now();
  nlohmann::json names = nlohmann::json::array();
  for (int slot : slots) names.push_back(slot_names_[slot]);
  job.progress["devices"] = names;
  if (!store_->UpdateJob(job).ok()) return std::nullopt;
  for (int slot : slots) slot_holder_[slot] = job.id;
  running_.insert(job.id);
  return std::make_pair(std::move(job), std::move(slots));
}

void JobQueue::WorkerLoop() {
  while (!stopping_) {
    std::optional<std::pair<JobRow, std::vector<int>>> claimed;
    {
      absl::MutexLock lock(&mu_);
      claimed = ClaimNextJob();
      if (!claimed) {
        jobs_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(500));
        continue;
      }
    }
    auto& [job, slots] = *claimed;
    nlohmann::json running = {{"type", "status"}, {"status", "running"}, {"devices", job.progress["devices"]}};
    (void)AppendEvent(job.id, running);
    RunJob(job, slots);
    absl::MutexLock lock(&mu_);
    running_.erase(job.id);
    cancel_requested_.erase(job.id);
    for (int slot : slots) slot_holder_[slot].clear();
    jobs_cv_.SignalAll();  // freed devices may let the head job start
  }
}

}  // namespace qlorad::service
