// The daemon's schema migrations (versions from kFirstDaemonMigrationVersion, after
// CoreMigrations()): 100 daemon_datasets_jobs_adapters (datasets, jobs, job_events,
// adapters, aliases), 101 evaluation_reviews (review_samples, evaluation_reviews),
// 102 interactive_review (review_judgements, review_submissions).
// Released migrations are never edited or renumbered; a change is a new migration.
// The tables' owners: core/service/daemon_store.h (datasets, jobs, job events),
// adapter_store.h (adapters, aliases), review_repository.h (reviews),
// judgement_repository.h (interactive review).
#ifndef QLORAD_CORE_STORE_DAEMON_MIGRATIONS_H_
#define QLORAD_CORE_STORE_DAEMON_MIGRATIONS_H_

#include <vector>

#include "core/store/store.h"

namespace qlorad::store {

// Migrations 100.. of the daemon (after CoreMigrations()).
std::vector<Migration> DaemonMigrations();

// CoreMigrations() followed by DaemonMigrations(): the daemon database's full list.
std::vector<Migration> DaemonDatabaseMigrations();

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_DAEMON_MIGRATIONS_H_
