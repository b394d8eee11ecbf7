// The append-only audit log (table audit_log, see migrations.cc).
//
// Append-only is enforced three ways: this class offers no update/delete; the table's
// BEFORE UPDATE/DELETE triggers RAISE(ABORT) for any SQL that tries (the error comes
// back as FAILED_PRECONDITION); and each entry carries hash = SHA-256(prev_hash ‖
// canonical entry JSON), so an edit made by bypassing SQLite (dropping the triggers,
// editing the file) is detected by VerifyChain(). Entries survive restarts (the
// database file, WAL mode).
#ifndef QLORAD_CORE_STORE_AUDIT_LOG_H_
#define QLORAD_CORE_STORE_AUDIT_LOG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/store/store.h"
#include "nlohmann/json.hpp"

namespace qlorad::store {

struct AuditEntry {
  int64_t seq = 0;          // assigned by Append
  std::string at;           // RFC 3339 UTC
  std::string actor;
  std::string entity_type;  // e.g. "adapter"
  std::string entity_id;
  std::string action;       // e.g. "approve"
  std::string from_state;
  std::string to_state;
  nlohmann::json details = nlohmann::json::object();
  std::string prev_hash;  // assigned by Append
  std::string hash;       // assigned by Append
};

class AuditLog {
 public:
  explicit AuditLog(Store* store) : store_(store) {}

  // Appends (inside the caller's transaction when there is one). INVALID_ARGUMENT when
  // at/actor/entity_type/entity_id/action is empty.
  absl::StatusOr<AuditEntry> Append(AuditEntry entry);
  // All entries in order, or those of one entity when entity_id is not empty.
  absl::StatusOr<std::vector<AuditEntry>> List(const std::string& entity_type = "",
                                               const std::string& entity_id = "");
  // DATA_LOSS naming the first entry whose hash or link does not verify.
  absl::Status VerifyChain();

  static constexpr const char* kGenesisHash = "0000000000000000000000000000000000000000000000000000000000000000";
  static std::string EntryHash(const AuditEntry& e);

 private:
  Store* store_;
};

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_AUDIT_LOG_H_
