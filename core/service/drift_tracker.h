// DriftTracker: drift of production prompts against each adapter's training prompts.
//
//  * When a job finishes, BuildProfile() profiles the adapter's training prompts
//    (core/monitor DriftProfile: top-k token distribution + "other", prompt-length
//    histogram, rare-token rate, mean base-model embedding and its spread — embeddings
//    from at most `max_embedded` prompts) and saves drift_profile.json with the adapter.
//  * Watch() starts a window for a loaded adapter; Observe() is the request path: it only
//    enqueues the prompt ids (a bounded queue; when full the prompt is dropped and
//    counted). A background thread records each queued prompt in the adapter's window and
//    embeds every kEmbedEvery-th one with the base model, only while no request waits
//    for the model — no drift work happens on the request path.
//  * Reports() computes PSI / JS / rare-rate delta / embedding distance per adapter.
//  * Locking: mu_ guards the queue and the worker's state; it is a leaf (the worker
//    records and embeds with it released). Checked by clang -Wthread-safety.
#ifndef QLORAD_CORE_SERVICE_DRIFT_TRACKER_H_
#define QLORAD_CORE_SERVICE_DRIFT_TRACKER_H_

#include <atomic>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/monitor/drift_monitor.h"
#include "core/serve/serving_engine.h"

namespace qlorad::service {

class DriftTracker {
 public:
  DriftTracker(serve::ServingEngine* engine, const monitor::DriftWindowOptions& window, size_t queue_capacity = 4096);
  ~DriftTracker() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status BuildProfile(const std::vector<std::vector<int64_t>>& prompts, const std::string& path,
                            size_t max_embedded = 256);
  // OK and nothing watched when `profile_path` does not exist (e.g. an imported adapter).
  absl::Status Watch(const std::string& adapter_id, const std::string& profile_path);
  void Unwatch(const std::string& adapter_id);
  void Observe(const std::string& adapter_id, std::vector<int64_t> prompt_ids) ABSL_LOCKS_EXCLUDED(mu_);
  std::map<std::string, monitor::DriftReport> Reports() const { return monitor_.ComputeAll(); }
  int64_t dropped() const { return dropped_.load(); }
  // Blocks until every queued prompt has been recorded (tests, shutdown).
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Flush() returns once this holds; the worker wakes once HasWorkLocked() does.
  bool DrainedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return (queue_.empty() && !busy_) || stopping_; }
  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); }
  static constexpr uint64_t kEmbedEvery = 4;

  serve::ServingEngine* const engine_;
  monitor::DriftMonitor monitor_;
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<std::pair<std::string, std::vector<int64_t>>> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;  // the worker holds a prompt taken from the queue
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> dropped_{0};
  uint64_t embed_counter_ = 0;  // worker thread only
  std::thread worker_;
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_DRIFT_TRACKER_H_
