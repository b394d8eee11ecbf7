// The schema migrations of core/store. The daemon (server) appends its own migrations
// (datasets, jobs, adapters, ...) after these with higher versions:
//   std::vector<Migration> all = CoreMigrations();
//   all.push_back({kFirstDaemonMigrationVersion, "jobs", "CREATE TABLE ..."});
// Released migrations are never edited or renumbered; a change is a new migration.
#ifndef QLORAD_CORE_STORE_MIGRATIONS_H_
#define QLORAD_CORE_STORE_MIGRATIONS_H_

#include <vector>

#include "core/store/store.h"

namespace qlorad::store {

// Versions 1..99 are reserved for core/store; the daemon's start at 100.
inline constexpr int kFirstDaemonMigrationVersion = 100;

// 1 audit_log (append-only: BEFORE UPDATE/DELETE triggers RAISE(ABORT)),
// 2 adapter_lifecycle (adapter_versions + append-only approval_decisions),
// 3 evaluation_records (immutable evaluation records keyed by id and baseline key).
std::vector<Migration> CoreMigrations();

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_MIGRATIONS_H_
