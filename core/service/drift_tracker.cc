#include "core/service/drift_tracker.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

monitor::PromptSample Sample(const std::vector<int64_t>& ids, std::vector<float> embedding) {
  monitor::PromptSample sample;
  sample.token_ids.assign(ids.begin(), ids.end());
  sample.embedding = std::move(embedding);
  return sample;
}

}  // namespace

DriftTracker::DriftTracker(serve::ServingEngine* engine, const monitor::DriftWindowOptions& window, size_t queue_capacity)
    : engine_(engine), monitor_(window), capacity_(queue_capacity), worker_([this] { Loop(); }) {}

DriftTracker::~DriftTracker() {
  {
    absl::MutexLock lock(&mu_);  // the worker and Flush() wake on the unlock
    stopping_ = true;
  }
  worker_.join();
}

absl::Status DriftTracker::BuildProfile(const std::vector<std::vector<int64_t>>& prompts, const std::string& path,
                                        size_t max_embedded) {
  if (prompts.empty()) return absl::InvalidArgumentError("no training prompts to profile");
  std::vector<monitor::PromptSample> samples;
  const size_t stride = std::max<size_t>(1, prompts.size() / std::max<size_t>(1, max_embedded));
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<float> embedding;
    if (i % stride == 0 && i / stride < max_embedded) {
      QLORAD_ASSIGN_OR_RETURN(embedding, engine_->EmbedPrompt(prompts[i]));
    }
    samples.push_back(Sample(prompts[i], std::move(embedding)));
  }
  QLORAD_ASSIGN_OR_RETURN(monitor::DriftProfile profile, monitor::DriftProfile::Build(samples));
  return profile.Save(path);
}

absl::Status DriftTracker::Watch(const std::string& adapter_id, const std::string& profile_path) {
  if (!std::filesystem::exists(profile_path)) return absl::OkStatus();
  QLORAD_ASSIGN_OR_RETURN(monitor::DriftProfile profile, monitor::DriftProfile::Load(profile_path));
  return monitor_.SetReference(adapter_id, std::make_shared<const monitor::DriftProfile>(std::move(profile)));
}

void DriftTracker::Unwatch(const std::string& adapter_id) { monitor_.Remove(adapter_id); }

void DriftTracker::Observe(const std::string& adapter_id, std::vector<int64_t> prompt_ids) {
  if (adapter_id.empty() || prompt_ids.empty()) return;
  absl::MutexLock lock(&mu_);
  if (queue_.size() >= capacity_) {
    ++dropped_;
    return;
  }
  queue_.emplace_back(adapter_id, std::move(prompt_ids));
}

void DriftTracker::Flush() {
  absl::MutexLock lock(&mu_, absl::Condition(this, &DriftTracker::DrainedLocked));
}

void DriftTracker::Loop() {
  while (true) {
    std::pair<std::string, std::vector<int64_t>> item;
    {
      absl::MutexLock lock(&mu_);
      busy_ = false;
      mu_.Await(absl::Condition(this, &DriftTracker::HasWorkLocked));
      if (stopping_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    // Every kEmbedEvery-th prompt gets an embedding (the centroid is a mean: a sample
    // estimates it), computed only when no request is waiting for the model.
    std::vector<float> embedding;
    if (embed_counter_++ % kEmbedEvery == 0) {
      for (int i = 0; i < 200 && engine_->in_flight() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      auto embedded = engine_->EmbedPrompt(item.second);
      if (embedded.ok()) embedding = std::move(*embedded);
    }
    // NOT_FOUND: the adapter has no profile (or was unwatched meanwhile) — nothing to record.
    (void)monitor_.Record(item.first, Sample(item.second, std::move(embedding)));
  }
}

}  // namespace qlorad::service
