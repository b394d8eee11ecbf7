#include "core/monitor/drift_window.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qlorad::monitor {

absl::StatusOr<std::unique_ptr<DriftWindow>> DriftWindow::Create(
    std::shared_ptr<const DriftProfile> reference, DriftWindowOptions options) {
  if (reference == nullptr) return absl::InvalidArgumentError("drift window needs a reference profile");
  if (options.max_prompts == 0) return absl::InvalidArgumentError("drift window max_prompts must be >= 1");
  if (!(options.max_age > absl::ZeroDuration())) {
    return absl::InvalidArgumentError(
        absl::StrCat("drift window max_age must be positive, got ", absl::FormatDuration(options.max_age)));
  }
  if (!options.clock) options.clock = [] { return absl::Now(); };
  return std::unique_ptr<DriftWindow>(new DriftWindow(std::move(reference), std::move(options)));
}

DriftWindow::DriftWindow(std::shared_ptr<const DriftProfile> reference, DriftWindowOptions options)
    : reference_(std::move(reference)), options_(std::move(options)) {}

absl::Status DriftWindow::Add(PromptSample prompt) {
  for (int32_t id : prompt.token_ids) {
    if (id < 0) return absl::InvalidArgumentError(absl::StrCat("negative token id ", id));
  }
  if (!prompt.embedding.empty() && reference_->has_embedding() &&
      prompt.embedding.size() != reference_->embedding_mean().size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt embedding has dimension ", prompt.embedding.size(), ", the reference profile has ",
        reference_->embedding_mean().size(), " (hint: different base model?)"));
  }
  auto shared = std::make_shared<const PromptSample>(std::move(prompt));
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  entries_.push_back(Entry{now, std::move(shared)});
  ++total_added_;
  EvictLocked(now);
  return absl::OkStatus();
}

void DriftWindow::EvictLocked(absl::Time now) const {
  while (entries_.size() > options_.max_prompts) entries_.pop_front();
  if (options_.max_age == absl::InfiniteDuration()) return;
  const absl::Time oldest = now - options_.max_age;
  while (!entries_.empty() && entries_.front().added < oldest) entries_.pop_front();
}

DriftWindow::Snapshot DriftWindow::TakeSnapshot() const {
  const absl::Time now = options_.clock();
  Snapshot snap;
  absl::MutexLock lock(&mu_);
  EvictLocked(now);
  snap.prompts.reserve(entries_.size());
  for (const Entry& e : entries_) snap.prompts.push_back(e.prompt);
  snap.total_added = total_added_;
  return snap;
}

absl::StatusOr<DriftReport> DriftWindow::ComputeReport() const {
  Snapshot snap = TakeSnapshot();
  std::vector<const PromptSample*> ptrs;
  ptrs.reserve(snap.prompts.size());
  for (const auto& p : snap.prompts) ptrs.push_back(p.get());
  return CompareToProfile(*reference_, ptrs);
}

size_t DriftWindow::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

void DriftWindow::Clear() {
  absl::MutexLock lock(&mu_);
  entries_.clear();
}

}  // namespace qlorad::monitor
