#include "core/store/adapter_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace qlorad::store {
namespace {

constexpr char kAdapterColumns[] = "id, name, version, job_id, path, base_fingerprint, dataset_id, created_at, loaded";
AdapterRow ReadAdapter(const Statement& s) {
  return {s.ColumnText(0), s.ColumnText(1), s.ColumnInt64(2), s.ColumnText(3), s.ColumnText(4),
          s.ColumnText(5), s.ColumnText(6), s.ColumnText(7), s.ColumnInt64(8) != 0};
}

absl::StatusOr<int64_t> CountOf(Store& s, const std::string& sql, const std::string& key) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare(sql));
  if (!key.empty()) st.Bind(1, key);
  QLORAD_RETURN_IF_ERROR(st.Step().status());
  return st.ColumnInt64(0);
}

absl::StatusOr<std::optional<std::string>> AliasTarget(Store& s, const std::string& alias) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare("SELECT adapter_id FROM aliases WHERE alias = ?"));
  st.Bind(1, alias);
  QLORAD_ASSIGN_OR_RETURN(bool found, st.Step());
  if (!found) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnText(0));
}

// UPDATE adapters SET loaded: NOT_FOUND when no row has `id`.
absl::Status UpdateLoaded(Store& s, const std::string& id, bool loaded) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare("UPDATE adapters SET loaded = ? WHERE id = ?"));
  QLORAD_RETURN_IF_ERROR(st.Bind(1, loaded ? 1 : 0).Bind(2, id).Run());
  QLORAD_ASSIGN_OR_RETURN(int64_t changed, CountOf(s, "SELECT changes()", ""));
  if (changed != 1) return absl::NotFoundError(absl::StrCat("adapter '", id, "' not found"));
  return absl::OkStatus();
}

absl::Status SetAlias(Store& s, const std::string& alias, const std::string& adapter_id, const std::string& at) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare(
                                            "INSERT INTO aliases (alias, adapter_id, updated_at) VALUES (?,?,?) "
                                            "ON CONFLICT(alias) DO UPDATE SET adapter_id = excluded.adapter_id, "
                                            "updated_at = excluded.updated_at"));
  return st.Bind(1, alias).Bind(2, adapter_id).Bind(3, at).Run();
}

AuditEntry AdapterEntry(const std::string& id, const std::string& at, const std::string& actor,
                        const std::string& action, nlohmann::json details) {
  return AuditEntry{0, at, actor, "adapter", id, action, "", "", std::move(details), "", ""};
}

}  // namespace

AdapterStore::AdapterStore(SharedStore* db, AdapterLifecycle::Clock clock)
    : db_(db), clock_(clock ? std::move(clock) : AdapterLifecycle::Clock(&AdapterLifecycle::SystemClockNow)) {}

absl::StatusOr<int64_t> AdapterStore::NextVersion(const std::string& name) {
  return db_->Read<int64_t>([&](Store& s) -> absl::StatusOr<int64_t> {
    QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare(
                                              "SELECT MAX(v) + 1 FROM ("
                                              "SELECT COALESCE(MAX(version), 0) AS v FROM adapters WHERE name = ?1 "
                                              "UNION ALL SELECT COALESCE(MAX(CAST(substr(adapter_id, length(?1) + 2) "
                                              "AS INTEGER)), 0) FROM adapter_versions "
                                              "WHERE substr(adapter_id, 1, length(?1) + 1) = ?1 || '@')"));
    st.Bind(1, name);
    QLORAD_RETURN_IF_ERROR(st.Step().status());
    return st.ColumnInt64(0);
  });
}

absl::StatusOr<AdapterRow> AdapterStore::Get(const std::string& id) {
  return db_->Read<AdapterRow>([&](Store& s) -> absl::StatusOr<AdapterRow> {
    QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare(absl::StrCat("SELECT ", kAdapterColumns, " FROM adapters WHERE id = ?")));
    st.Bind(1, id);
    QLORAD_ASSIGN_OR_RETURN(bool found, st.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("adapter '", id, "' not found"));
    return ReadAdapter(st);
  });
}

absl::StatusOr<std::vector<AdapterRow>> AdapterStore::List(const std::string& after_id, int64_t limit) {
  return db_->Read<std::vector<AdapterRow>>([&](Store& s) -> absl::StatusOr<std::vector<AdapterRow>> {
    QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare(absl::StrCat("SELECT ", kAdapterColumns,
                                                                 " FROM adapters WHERE id > ? ORDER BY id LIMIT ?")));
    st.Bind(1, after_id).Bind(2, limit);
    return CollectRows<AdapterRow>(st, ReadAdapter);
  });
}

absl::StatusOr<int64_t> AdapterStore::Count() {
  return db_->Read<int64_t>([&](Store& s) { return CountOf(s, "SELECT COUNT(*) FROM adapters", ""); });
}

absl::StatusOr<std::optional<std::string>> AdapterStore::ResolveAlias(const std::string& alias) {
  return db_->Read<std::optional<std::string>>([&](Store& s) { return AliasTarget(s, alias); });
}

absl::StatusOr<std::vector<std::string>> AdapterStore::AliasesOf(const std::string& adapter_id) {
  return db_->Read<std::vector<std::string>>([&](Store& s) -> absl::StatusOr<std::vector<std::string>> {
    QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare("SELECT alias FROM aliases WHERE adapter_id = ? ORDER BY alias"));
    st.Bind(1, adapter_id);
    return CollectRows<std::string>(st, [](const Statement& row) { return row.ColumnText(0); });
  });
}

absl::StatusOr<std::optional<std::string>> AdapterStore::IdOfJob(const std::string& job_id) {
  return db_->Read<std::optional<std::string>>([&](Store& s) -> absl::StatusOr<std::optional<std::string>> {
    QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare("SELECT id FROM adapters WHERE job_id = ? ORDER BY version LIMIT 1"));
    st.Bind(1, job_id);
    QLORAD_ASSIGN_OR_RETURN(bool found, st.Step());
    if (!found) return std::optional<std::string>();
    return std::optional<std::string>(st.ColumnText(0));
  });
}

absl::StatusOr<AdapterVersion> AdapterStore::Version(const std::string& adapter_id) {
  return db_->Read<AdapterVersion>([&](Store& s) { return AdapterLifecycle(&s, clock_).Get(adapter_id); });
}

absl::Status AdapterStore::Register(const AdapterRow& r, const std::string& actor, const nlohmann::json& details) {
  return db_->With([&](Store& s) {
    return s.InTransaction([&]() -> absl::Status {
      QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare(absl::StrCat("INSERT INTO adapters (", kAdapterColumns,
                                                                   ") VALUES (?,?,?,?,?,?,?,?,?)")));
      QLORAD_RETURN_IF_ERROR(st.Bind(1, r.id).Bind(2, r.name).Bind(3, r.version).Bind(4, r.job_id).Bind(5, r.path)
                                 .Bind(6, r.base_fingerprint).Bind(7, r.dataset_id).Bind(8, r.created_at)
                                 .Bind(9, r.loaded ? 1 : 0).Run());
      return AdapterLifecycle(&s, clock_).RegisterTrained(r.id, actor, details);
    });
  });
}

absl::Status AdapterStore::CheckAlias(const std::string& alias) {
  if (alias.empty() || alias.find('@') != std::string::npos)
    return absl::InvalidArgumentError("alias: must be non-empty and contain no '@' (e.g. sentiment:prod)");
  return absl::OkStatus();
}

absl::Status AdapterStore::Promote(const std::string& id, const std::string& alias, const std::string& actor,
                                   const DeploymentPolicy& policy, const PromoteGuard& guard) {
  QLORAD_RETURN_IF_ERROR(CheckAlias(alias));
  return db_->With([&](Store& s) {
    return s.InTransaction([&]() -> absl::Status {
      AdapterLifecycle lifecycle(&s, clock_);
      QLORAD_ASSIGN_OR_RETURN(AdapterVersion current, lifecycle.Get(id));
      QLORAD_ASSIGN_OR_RETURN(std::optional<std::string> previous, AliasTarget(s, alias));
      if (guard.expected_target && *guard.expected_target != previous.value_or("")) {
        return absl::AbortedError(absl::StrCat("alias '", alias, "' moved to '", previous.value_or(""),
                                               "' while the promote was checked (hint: retry)"));
      }
      nlohmann::json details = guard.details.is_object() ? guard.details : nlohmann::json::object();
      details["alias"] = alias;
      details["previous_target"] = previous.value_or("");
      auto point_alias = [&](const AdapterVersion&, const std::string& now) -> absl::Status {
        QLORAD_RETURN_IF_ERROR(UpdateLoaded(s, id, true));
        return SetAlias(s, alias, id, now);
      };
      if (current.state != AdapterState::kDeployed)
        return lifecycle.DeployAs(id, actor, alias, policy, "promote_deploy", details, point_alias);
      const std::string now = clock_();
      QLORAD_RETURN_IF_ERROR(point_alias(current, now));
      AuditEntry entry = AdapterEntry(id, now, actor, "promote", std::move(details));
      entry.from_state = entry.to_state = AdapterStateName(AdapterState::kDeployed);
      return lifecycle.audit().Append(std::move(entry)).status();
    });
  });
}

absl::Status AdapterStore::SetLoaded(const std::string& id, bool loaded, const std::string& actor,
                                     const std::string& action, const nlohmann::json& details) {
  return db_->With([&](Store& s) {
    return s.InTransaction([&]() -> absl::Status {
      QLORAD_RETURN_IF_ERROR(UpdateLoaded(s, id, loaded));
      return AuditLog(&s).Append(AdapterEntry(id, clock_(), actor, action, details)).status();
    });
  });
}

absl::Status AdapterStore::Delete(const std::string& id, const std::string& actor, const nlohmann::json& details) {
  return db_->With([&](Store& s) {
    return s.InTransaction([&]() -> absl::Status {
      QLORAD_ASSIGN_OR_RETURN(int64_t aliases, CountOf(s, "SELECT COUNT(*) FROM aliases WHERE adapter_id = ?", id));
      if (aliases > 0)
        return absl::FailedPreconditionError(
            absl::StrCat("adapter '", id, "' is the target of an alias (hint: move the alias first)"));
      auto remove_row = [&](const AdapterVersion&, const std::string&) -> absl::Status {
        QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare("DELETE FROM adapters WHERE id = ?"));
        QLORAD_RETURN_IF_ERROR(st.Bind(1, id).Run());
        QLORAD_ASSIGN_OR_RETURN(int64_t changed, CountOf(s, "SELECT changes()", ""));
        return changed == 1 ? absl::OkStatus() : absl::NotFoundError(absl::StrCat("adapter '", id, "' not found"));
      };
      AdapterLifecycle lifecycle(&s, clock_);
      QLORAD_ASSIGN_OR_RETURN(AdapterVersion current, lifecycle.Get(id));
      if (current.state != AdapterState::kRetired) return lifecycle.RetireAs(id, actor, "delete", details, remove_row);
      QLORAD_RETURN_IF_ERROR(remove_row(current, ""));
      AuditEntry entry = AdapterEntry(id, clock_(), actor, "delete", details);
      entry.from_state = entry.to_state = AdapterStateName(AdapterState::kRetired);
      return lifecycle.audit().Append(std::move(entry)).status();
    });
  });
}

absl::Status AdapterStore::Approve(const std::string& id, const Decision& decision) {
  return db_->With([&](Store& s) { return AdapterLifecycle(&s, clock_).Approve(id, decision); });
}

absl::Status AdapterStore::Reject(const std::string& id, const Decision& decision) {
  return db_->With([&](Store& s) { return AdapterLifecycle(&s, clock_).Reject(id, decision); });
}

}  // namespace qlorad::store
