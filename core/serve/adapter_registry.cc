#include "core/serve/adapter_registry.h"

#include <chrono>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad::serve {

const char* AdapterTierName(AdapterTier tier) {
  switch (tier) {
    case AdapterTier::kDevice: return "device";
    case AdapterTier::kHost: return "host";
    default: return "disk";
  }
}

std::shared_ptr<const ServingAdapter> CopyAdapterTo(const ServingAdapter& adapter, const c10::Device& device) {
  auto copy = std::make_shared<ServingAdapter>(adapter);
  for (auto& [module, delta] : copy->modules) {
    delta.a = delta.a.to(device);
    delta.b = delta.b.to(device);
    if (!device.is_cpu()) delta.b = delta.b.contiguous();  // the CUDA SGMV reads B [out, r] row-major
    if (delta.magnitude.defined()) delta.magnitude = delta.magnitude.to(device);  // DoRA
    if (delta.row_gain.defined()) delta.row_gain = delta.row_gain.to(device);
  }
  return copy;
}

AdapterTier AdapterRegistry::Entry::tier() const {
  if (device != nullptr) return AdapterTier::kDevice;
  return host != nullptr ? AdapterTier::kHost : AdapterTier::kDisk;
}

AdapterRegistry::AdapterRegistry(const BaseModuleShapes* shapes, RegistryOptions options)
    : shapes_(shapes), options_(std::move(options)) {}

absl::StatusOr<std::shared_ptr<const ServingAdapter>> AdapterRegistry::Bring(const std::string& id,
                                                                             const Entry& snapshot) const {
  if (snapshot.host != nullptr)
    return CatchTorchErrors("moving an adapter to the device", [&]() -> absl::StatusOr<std::shared_ptr<const ServingAdapter>> {
      return CopyAdapterTo(*snapshot.host, options_.load.device);
    });
  AdapterLoadOptions load = options_.load;
  load.allow_base_mismatch = snapshot.options.allow_base_mismatch;
  return LoadServingAdapter(snapshot.dir, id, *shapes_, load);
}

absl::Status AdapterRegistry::Register(const std::string& id, const std::string& dir, const RegisterOptions& options) {
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it != entries_.end() && (!options.prefetch || it->second.device != nullptr)) {
      it->second.options.pin = it->second.options.pin || options.pin;
      return absl::OkStatus();
    }
  }
  if (Contains(id)) {  // prefetch an already registered adapter; pin it only once it is placed
    QLORAD_RETURN_IF_ERROR(Acquire(id).status());
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it != entries_.end()) it->second.options.pin = it->second.options.pin || options.pin;
    return absl::OkStatus();
  }
  const auto start = std::chrono::steady_clock::now();
  Entry fresh{dir, options, nullptr, nullptr, 0, 0, 0, 0};
  auto loaded = Bring(id, fresh);
  absl::MutexLock lock(&mu_);
  if (!loaded.ok()) {
    ++counters_.load_failures;
    return loaded.status();
  }
  if (auto it = entries_.find(id); it != entries_.end()) {  // a concurrent Register won: keep its copy, add the pin
    it->second.options.pin = it->second.options.pin || options.pin;
    return absl::OkStatus();
  }
  Entry& entry = entries_.emplace(id, std::move(fresh)).first->second;
  entry.bytes = (*loaded)->bytes;
  if (options.prefetch) {
    PlaceLocked(id, *loaded, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  } else if (!device_is_host() && HostCountLocked() < options_.max_host_adapters) {
    entry.host = CopyAdapterTo(**loaded, c10::Device(c10::kCPU));
  }
  return absl::OkStatus();
}

absl::Status AdapterRegistry::Remove(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (entries_.erase(id) == 0) return absl::NotFoundError(absl::StrCat("adapter '", id, "' is not loaded"));
  ++counters_.removals;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ServingAdapter>> AdapterRegistry::Acquire(const std::string& id) {
  Entry snapshot;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end())
      return absl::FailedPreconditionError(absl::StrCat("adapter '", id, "' is not loaded (hint: load it first)"));
    it->second.last_used = ++clock_;
    if (it->second.device != nullptr) return it->second.device;
    snapshot = it->second;
  }
  const auto start = std::chrono::steady_clock::now();
  auto brought = Bring(id, snapshot);
  absl::MutexLock lock(&mu_);
  if (!brought.ok()) {
    ++counters_.load_failures;
    return brought.status();
  }
  auto it = entries_.find(id);
  if (it == entries_.end()) return *brought;  // removed meanwhile: this request still gets it
  if (it->second.device != nullptr) return it->second.device;  // a concurrent Acquire placed it
  PlaceLocked(id, *brought, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return *brought;
}

void AdapterRegistry::PlaceLocked(const std::string& id, std::shared_ptr<const ServingAdapter> adapter, double seconds) {
  Entry& placed = entries_.at(id);
  placed.device = std::move(adapter);
  placed.host = nullptr;
  placed.last_used = ++clock_;
  ++placed.loads;
  ++counters_.loads;
  counters_.load_seconds.push_back(seconds);
  int64_t on_device = 0;
  for (const auto& [other_id, entry] : entries_) on_device += entry.device != nullptr;
  while (on_device > options_.max_device_adapters) {
    Entry* victim = nullptr;
    for (auto& [other_id, entry] : entries_)
      if (entry.device != nullptr && !entry.options.pin && other_id != id &&
          (victim == nullptr || entry.last_used < victim->last_used))
        victim = &entry;
    if (victim == nullptr) break;  // everything else is pinned
    DemoteLocked(*victim);
    --on_device;
  }
}

int64_t AdapterRegistry::HostCountLocked() const {
  int64_t on_host = 0;
  for (const auto& [id, other] : entries_) on_host += other.host != nullptr;
  return on_host;
}

void AdapterRegistry::DemoteLocked(Entry& entry) {
  if (!device_is_host() && HostCountLocked() < options_.max_host_adapters) entry.host = CopyAdapterTo(*entry.device, c10::Device(c10::kCPU));
  entry.device = nullptr;
  ++entry.evictions;
  ++counters_.evictions;
}

bool AdapterRegistry::Contains(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  return entries_.count(id) != 0;
}

std::shared_ptr<const ServingAdapter> AdapterRegistry::FindResident(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.device;
}

AdapterResidency AdapterRegistry::Describe(const std::string& id, const Entry& entry) {
  return {id, entry.tier(), entry.options.pin, entry.bytes, entry.loads, entry.evictions};
}

std::vector<AdapterResidency> AdapterRegistry::Residency() const {
  absl::MutexLock lock(&mu_);
  std::vector<AdapterResidency> out;
  for (const auto& [id, entry] : entries_) out.push_back(Describe(id, entry));
  return out;
}

std::optional<AdapterResidency> AdapterRegistry::ResidencyOf(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return Describe(id, it->second);
}

RegistryCounters AdapterRegistry::DrainCounters() {
  absl::MutexLock lock(&mu_);
  RegistryCounters out = counters_;
  counters_.load_seconds.clear();
  return out;
}

}  // namespace qlorad::serve
