#include "core/store/shared_store.h"

namespace qlorad::store {

absl::StatusOr<std::unique_ptr<SharedStore>> SharedStore::Open(const std::string& path,
                                                               const std::vector<Migration>& migrations,
                                                               const BusyPolicy& busy) {
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path, migrations, busy);
  if (!store.ok()) return store.status();
  return std::make_unique<SharedStore>(*std::move(store));
}

absl::Status SharedStore::With(const std::function<absl::Status(Store&)>& fn) {
  absl::MutexLock lock(&mu_);
  return fn(*store_);
}

}  // namespace qlorad::store
