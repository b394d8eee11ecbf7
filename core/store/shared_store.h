// SharedStore: one SQLite Store shared by the daemon's repositories (jobs and datasets in
// core/service, adapters and reviews here), serialised by one mutex. Store itself is not
// thread-safe; every access goes through With(), which holds the lock for the whole
// call, so a repository method that opens a transaction inside With() is atomic with
// respect to every other thread.
#ifndef QLORAD_CORE_STORE_SHARED_STORE_H_
#define QLORAD_CORE_STORE_SHARED_STORE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/store/store.h"

namespace qlorad::store {

class SharedStore {
 public:
  explicit SharedStore(std::unique_ptr<Store> store) : store_(std::move(store)) {}
  // Opens (creating) `path` with `migrations` and `busy` (Store::Open's contract).
  static absl::StatusOr<std::unique_ptr<SharedStore>> Open(const std::string& path,
                                                           const std::vector<Migration>& migrations,
                                                           const BusyPolicy& busy = {});

  // Runs fn with the store under the lock and returns its status.
  absl::Status With(const std::function<absl::Status(Store&)>& fn) ABSL_LOCKS_EXCLUDED(mu_);

  // With() for a function returning a value: fn(store) -> absl::StatusOr<T>.
  template <typename T, typename Fn>
  absl::StatusOr<T> Read(Fn fn) ABSL_LOCKS_EXCLUDED(mu_) {
    std::optional<T> out;
    absl::Status status = With([&](Store& s) -> absl::Status {
      absl::StatusOr<T> value = fn(s);
      if (!value.ok()) return value.status();
      out.emplace(*std::move(value));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return *std::move(out);
  }

 private:
  absl::Mutex mu_;
  std::unique_ptr<Store> store_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_SHARED_STORE_H_
