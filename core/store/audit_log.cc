#include "core/store/audit_log.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/sha256.h"

namespace qlorad::store {
namespace {

AuditEntry ReadEntry(const Statement& st) {
  AuditEntry e;
  e.seq = st.ColumnInt64(0);
  e.at = st.ColumnText(1);
  e.actor = st.ColumnText(2);
  e.entity_type = st.ColumnText(3);
  e.entity_id = st.ColumnText(4);
  e.action = st.ColumnText(5);
  e.from_state = st.ColumnText(6);
  e.to_state = st.ColumnText(7);
  e.details = nlohmann::json::parse(st.ColumnText(8), nullptr, false);
  e.prev_hash = st.ColumnText(9);
  e.hash = st.ColumnText(10);
  return e;
}

constexpr const char* kColumns =
    "seq, at, actor, entity_type, entity_id, action, from_state, to_state, details, prev_hash, hash";

}  // namespace

std::string AuditLog::EntryHash(const AuditEntry& e) {
  nlohmann::json canonical = {{"seq", e.seq},           {"at", e.at},           {"actor", e.actor},
                              {"entity_type", e.entity_type}, {"entity_id", e.entity_id}, {"action", e.action},
                              {"from_state", e.from_state}, {"to_state", e.to_state}, {"details", e.details.dump()}};
  return Sha256Hex(e.prev_hash + "\n" + canonical.dump());
}

absl::StatusOr<AuditEntry> AuditLog::Append(AuditEntry e) {
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"at", &e.at},
                                    {"actor", &e.actor},
                                    {"entity_type", &e.entity_type},
                                    {"entity_id", &e.entity_id},
                                    {"action", &e.action}}) {
    if (value->empty()) return absl::InvalidArgumentError(absl::StrCat("audit entry: field '", name, "' is empty"));
  }
  absl::Status s = store_->InTransaction([&]() -> absl::Status {
    auto last = store_->Prepare("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1");
    if (!last.ok()) return last.status();
    auto row = last->Step();
    if (!row.ok()) return row.status();
    // AUTOINCREMENT never reuses a seq; sqlite_sequence holds the high-water mark.
    e.seq = 1;
    e.prev_hash = kGenesisHash;
    if (*row) {
      e.seq = last->ColumnInt64(0) + 1;
      e.prev_hash = last->ColumnText(1);
    }
    last->Reset();
    e.hash = EntryHash(e);
    auto ins = store_->Prepare(absl::StrCat("INSERT INTO audit_log(", kColumns, ") VALUES (?,?,?,?,?,?,?,?,?,?,?)"));
    if (!ins.ok()) return ins.status();
    ins->Bind(1, e.seq).Bind(2, e.at).Bind(3, e.actor).Bind(4, e.entity_type).Bind(5, e.entity_id).Bind(6, e.action);
    ins->Bind(7, e.from_state).Bind(8, e.to_state).Bind(9, e.details.dump()).Bind(10, e.prev_hash).Bind(11, e.hash);
    return ins->Run();
  });
  if (!s.ok()) return s;
  return e;
}

absl::StatusOr<std::vector<AuditEntry>> AuditLog::List(const std::string& entity_type, const std::string& entity_id) {
  const bool filter = !entity_id.empty();
  auto st = store_->Prepare(absl::StrCat("SELECT ", kColumns, " FROM audit_log",
                                         filter ? " WHERE entity_type = ? AND entity_id = ?" : "", " ORDER BY seq"));
  if (!st.ok()) return st.status();
  if (filter) st->Bind(1, entity_type).Bind(2, entity_id);
  return CollectRows<AuditEntry>(*st, ReadEntry);
}

absl::Status AuditLog::VerifyChain() {
  auto all = List();
  if (!all.ok()) return all.status();
  std::string prev = kGenesisHash;
  for (const AuditEntry& e : *all) {
    if (e.prev_hash != prev) {
      return absl::DataLossError(absl::StrCat("audit_log entry ", e.seq, ": prev_hash does not link to the entry before it"
                                              " (an entry was removed or reordered)"));
    }
    if (e.details.is_discarded() || EntryHash(e) != e.hash) {
      return absl::DataLossError(absl::StrCat("audit_log entry ", e.seq, ": hash mismatch (the entry was altered)"));
    }
    prev = e.hash;
  }
  return absl::OkStatus();
}

}  // namespace qlorad::store
