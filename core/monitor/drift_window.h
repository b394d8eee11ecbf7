// DriftWindow: a thread-safe sliding window of one adapter's recent prompts,
// compared against that adapter's reference DriftProfile.
//
// Request path: Add() validates the prompt outside the lock, then takes a
// short lock to append one shared_ptr and evict expired/overflowing entries
// (O(1) amortised; no statistics are computed there).
// Off the request path (a metrics collector or a background thread):
// ComputeReport() = TakeSnapshot() (copies the shared_ptrs under the same
// short lock) + CompareToProfile() on the copy, outside the lock, so
// concurrent Add() calls never wait for the statistics.
//
// Window bounds: at most `max_prompts` newest prompts, and (if max_age is
// finite) only prompts added within `max_age` of the clock's now.
#ifndef QLORAD_CORE_MONITOR_DRIFT_WINDOW_H_
#define QLORAD_CORE_MONITOR_DRIFT_WINDOW_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/monitor/drift_profile.h"
#include "core/monitor/drift_report.h"

namespace qlorad::monitor {

struct DriftWindowOptions {
  size_t max_prompts = 500;                          // >= 1
  absl::Duration max_age = absl::InfiniteDuration();  // > 0
  std::function<absl::Time()> clock;                 // default absl::Now
};

class DriftWindow {
 public:
  // The prompts of one window, pinned (immutable) so they can be read without
  // the window's lock.
  struct Snapshot {
    std::vector<std::shared_ptr<const PromptSample>> prompts;
    uint64_t total_added = 0;  // prompts ever added (a monotonic counter)
  };

  // INVALID_ARGUMENT on a null reference, max_prompts 0 or max_age <= 0.
  static absl::StatusOr<std::unique_ptr<DriftWindow>> Create(
      std::shared_ptr<const DriftProfile> reference, DriftWindowOptions options = {});

  // Records one prompt. INVALID_ARGUMENT (and nothing recorded) on a negative
  // token id or an embedding whose dimension differs from the reference's.
  absl::Status Add(PromptSample prompt);

  // The current window (oldest first), expired prompts excluded.
  Snapshot TakeSnapshot() const;

  // Snapshot + CompareToProfile outside the lock. FAILED_PRECONDITION when
  // the window is empty.
  absl::StatusOr<DriftReport> ComputeReport() const;

  // Prompts currently held (expired ones may still be counted until the next
  // Add or snapshot).
  size_t size() const;
  void Clear();
  const std::shared_ptr<const DriftProfile>& reference() const { return reference_; }
  const DriftWindowOptions& options() const { return options_; }

 private:
  struct Entry {
    absl::Time added;
    std::shared_ptr<const PromptSample> prompt;
  };
  DriftWindow(std::shared_ptr<const DriftProfile> reference, DriftWindowOptions options);
  void EvictLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<const DriftProfile> reference_;
  const DriftWindowOptions options_;
  mutable absl::Mutex mu_;
  mutable std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t total_added_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace qlorad::monitor

#endif  // QLORAD_CORE_MONITOR_DRIFT_WINDOW_H_
