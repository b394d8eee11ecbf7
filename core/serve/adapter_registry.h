// The serving engine's adapters by id ("name@version"), in three residency tiers:
// the compute device (ready for requests), host RAM (a copy to move back without
// reading the file; only when the device is not the CPU) and disk (just the
// validated directory). The device tier is bounded by an LRU over unpinned adapters.
//
// Contract:
//  * Register() reads and validates the adapter (serving_adapter.h) before anything
//    changes; a refused adapter leaves the registry as it was. With prefetch it is
//    placed on the device at once; without, it waits in the lower tier.
//  * Acquire() returns the device copy for a request, bringing it up from host or
//    disk when needed (a disk reload is validated again; if the file went bad the
//    request fails and nothing else is touched). The returned shared_ptr pins that
//    exact copy for the request; eviction and Remove() only drop the registry's
//    reference, so in-flight requests always finish on what they were admitted with.
//  * Placing beyond max_device_adapters demotes the least recently acquired unpinned
//    adapter (never the one being placed). Pinned adapters are never demoted.
//  * Thread-safe; file reads and device copies on request happen outside the registry
//    lock (Bring is ABSL_LOCKS_EXCLUDED, checked by clang -Wthread-safety). mu_ is a
//    leaf: no other lock is taken while it is held.
#ifndef QLORAD_CORE_SERVE_ADAPTER_REGISTRY_H_
#define QLORAD_CORE_SERVE_ADAPTER_REGISTRY_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/serve/serving_adapter.h"

namespace qlorad::serve {

enum class AdapterTier { kDevice, kHost, kDisk };
const char* AdapterTierName(AdapterTier tier);

struct RegistryOptions {
  AdapterLoadOptions load;           // base fingerprint, max rank, device, dtype
  int64_t max_device_adapters = 64;  // LRU bound of the device tier
  int64_t max_host_adapters = 256;   // bound of the host tier (device != CPU only)
};

struct RegisterOptions {
  bool allow_base_mismatch = false;
  bool pin = false;       // never demoted from the device tier
  bool prefetch = true;   // place on the device now
};

struct AdapterResidency {
  std::string id;
  AdapterTier tier = AdapterTier::kDisk;
  bool pinned = false;
  int64_t bytes = 0;
  int64_t loads = 0, evictions = 0;
};

struct RegistryCounters {
  int64_t loads = 0, load_failures = 0, evictions = 0, removals = 0;
  std::vector<double> load_seconds;  // each placement from host or disk since the last drain
};

class AdapterRegistry {
 public:
  AdapterRegistry(const BaseModuleShapes* shapes, RegistryOptions options);

  // Registering an id that is already present updates pinning and prefetches.
  absl::Status Register(const std::string& id, const std::string& dir, const RegisterOptions& options)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Remove(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);  // NOT_FOUND if absent
  absl::StatusOr<std::shared_ptr<const ServingAdapter>> Acquire(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);

  bool Contains(const std::string& id) const ABSL_LOCKS_EXCLUDED(mu_);
  // The device copy if `id` is on the device tier, else nullptr (no loading).
  std::shared_ptr<const ServingAdapter> FindResident(const std::string& id) const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<AdapterResidency> Residency() const ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<AdapterResidency> ResidencyOf(const std::string& id) const ABSL_LOCKS_EXCLUDED(mu_);
  RegistryCounters DrainCounters() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string dir;
    RegisterOptions options;
    std::shared_ptr<const ServingAdapter> device, host;
    int64_t last_used = 0, loads = 0, evictions = 0, bytes = 0;
    AdapterTier tier() const;
  };
  static AdapterResidency Describe(const std::string& id, const Entry& entry);
  // Reads `dir` (disk) or copies `host` to the device; no lock held.
  absl::StatusOr<std::shared_ptr<const ServingAdapter>> Bring(const std::string& id, const Entry& snapshot) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Installs `adapter` on the device tier of `id` and demotes beyond the bound.
  void PlaceLocked(const std::string& id, std::shared_ptr<const ServingAdapter> adapter, double seconds)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DemoteLocked(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t HostCountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool device_is_host() const { return options_.load.device.is_cpu(); }

  const BaseModuleShapes* const shapes_;
  const RegistryOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  int64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
  RegistryCounters counters_ ABSL_GUARDED_BY(mu_);
};

// A copy of `adapter` with every tensor on `device`.
std::shared_ptr<const ServingAdapter> CopyAdapterTo(const ServingAdapter& adapter, const c10::Device& device);

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_ADAPTER_REGISTRY_H_
