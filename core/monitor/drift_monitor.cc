#include "core/monitor/drift_monitor.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace qlorad::monitor {

DriftMonitor::DriftMonitor(DriftWindowOptions window_options)
    : window_options_(std::move(window_options)) {}

absl::Status DriftMonitor::SetReference(const std::string& adapter,
                                        std::shared_ptr<const DriftProfile> reference) {
  if (adapter.empty()) return absl::InvalidArgumentError("drift monitor: empty adapter name");
  absl::StatusOr<std::unique_ptr<DriftWindow>> window =
      DriftWindow::Create(std::move(reference), window_options_);
  if (!window.ok()) {
    return absl::Status(window.status().code(),
                        absl::StrCat("adapter '", adapter, "': ", window.status().message()));
  }
  std::shared_ptr<DriftWindow> shared = std::move(*window);
  absl::MutexLock lock(&mu_);
  windows_[adapter] = std::move(shared);
  return absl::OkStatus();
}

void DriftMonitor::Remove(const std::string& adapter) {
  absl::MutexLock lock(&mu_);
  windows_.erase(adapter);
}

absl::Status DriftMonitor::Record(const std::string& adapter, PromptSample prompt) {
  std::shared_ptr<DriftWindow> window;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = windows_.find(adapter);
    if (it == windows_.end()) {
      return absl::NotFoundError(
          absl::StrCat("adapter '", adapter, "' has no drift reference profile"));
    }
    window = it->second;
  }
  return window->Add(std::move(prompt));
}

std::shared_ptr<const DriftWindow> DriftMonitor::Find(const std::string& adapter) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = windows_.find(adapter);
  return it == windows_.end() ? nullptr : it->second;
}

absl::StatusOr<DriftReport> DriftMonitor::Compute(const std::string& adapter) const {
  std::shared_ptr<const DriftWindow> window = Find(adapter);
  if (window == nullptr) {
    return absl::NotFoundError(absl::StrCat("adapter '", adapter, "' is not drift-monitored"));
  }
  return window->ComputeReport();
}

std::map<std::string, DriftReport> DriftMonitor::ComputeAll() const {
  std::vector<std::pair<std::string, std::shared_ptr<const DriftWindow>>> windows;
  {
    absl::ReaderMutexLock lock(&mu_);
    windows.assign(windows_.begin(), windows_.end());
  }
  std::map<std::string, DriftReport> reports;
  for (const auto& [name, window] : windows) {
    absl::StatusOr<DriftReport> r = window->ComputeReport();
    if (r.ok()) reports.emplace(name, *std::move(r));
  }
  return reports;
}

size_t DriftMonitor::num_adapters() const {
  absl::ReaderMutexLock lock(&mu_);
  return windows_.size();
}

}  // namespace qlorad::monitor
