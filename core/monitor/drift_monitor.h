// DriftMonitor: one DriftWindow per adapter, keyed by adapter name, for the
// serving engine (records prompts) and the metrics collector (reads reports).
//
// Record() is on the request path: a shared (reader) lock on the adapter map,
// then DriftWindow::Add (see drift_window.h). ComputeAll() copies the window
// handles under the lock and computes every report outside it. Adapters
// without a reference profile are not monitored (Record returns NOT_FOUND,
// which callers may ignore). The set of adapters is whatever the registry
// registers, so the names are bounded by the registry (design.md section 4);
// capping exported label values is the exporter's job (deploy/METRICS.md).
#ifndef QLORAD_CORE_MONITOR_DRIFT_MONITOR_H_
#define QLORAD_CORE_MONITOR_DRIFT_MONITOR_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/monitor/drift_window.h"

namespace qlorad::monitor {

class DriftMonitor {
 public:
  // `window_options` apply to every adapter's window (validated on first use).
  explicit DriftMonitor(DriftWindowOptions window_options = {});

  // Starts monitoring `adapter` against `reference`, or replaces its
  // reference (a new adapter version): the window starts empty either way.
  // INVALID_ARGUMENT on an empty name, a null profile or bad window options.
  absl::Status SetReference(const std::string& adapter,
                            std::shared_ptr<const DriftProfile> reference);
  // Stops monitoring `adapter` (no-op when unknown).
  void Remove(const std::string& adapter);

  // Records one prompt for `adapter`. NOT_FOUND when the adapter has no
  // reference profile; INVALID_ARGUMENT from DriftWindow::Add.
  absl::Status Record(const std::string& adapter, PromptSample prompt);

  // Reports for every monitored adapter with a non-empty window, by name.
  std::map<std::string, DriftReport> ComputeAll() const;
  // One adapter's report (NOT_FOUND when unknown, FAILED_PRECONDITION when empty).
  absl::StatusOr<DriftReport> Compute(const std::string& adapter) const;

  size_t num_adapters() const;

 private:
  std::shared_ptr<const DriftWindow> Find(const std::string& adapter) const;

  const DriftWindowOptions window_options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<DriftWindow>> windows_ ABSL_GUARDED_BY(mu_);
};

}  // namespace qlorad::monitor

#endif  // QLORAD_CORE_MONITOR_DRIFT_MONITOR_H_
