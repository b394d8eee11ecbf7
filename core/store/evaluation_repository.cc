#include "core/store/evaluation_repository.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qlorad::store {
namespace {

constexpr const char* kSelect = "SELECT id, baseline_key, adapter_id, created_at, record_json FROM evaluation_records ";

StoredEvaluation Read(const Statement& st) {
  return {st.ColumnText(0), st.ColumnText(1), st.ColumnText(2), st.ColumnText(3), st.ColumnText(4)};
}

absl::StatusOr<std::vector<StoredEvaluation>> All(Statement& st) { return CollectRows<StoredEvaluation>(st, Read); }

}  // namespace

absl::Status EvaluationRepository::Put(const StoredEvaluation& r) {
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"id", &r.id},
                                    {"baseline_key", &r.baseline_key},
                                    {"created_at", &r.created_at},
                                    {"record_json", &r.record_json}}) {
    if (value->empty()) return absl::InvalidArgumentError(absl::StrCat("evaluation record: ", name, " is empty"));
  }
  return store_->InTransaction([&]() -> absl::Status {
    auto existing = Get(r.id);
    if (existing.ok()) return absl::AlreadyExistsError(absl::StrCat("evaluation record '", r.id, "' already exists"));
    if (existing.status().code() != absl::StatusCode::kNotFound) return existing.status();
    auto st = store_->Prepare(
        "INSERT INTO evaluation_records(id, baseline_key, adapter_id, created_at, record_json) VALUES (?,?,?,?,?)");
    if (!st.ok()) return st.status();
    st->Bind(1, r.id).Bind(2, r.baseline_key).Bind(3, r.adapter_id).Bind(4, r.created_at).Bind(5, r.record_json);
    return st->Run();
  });
}

absl::StatusOr<StoredEvaluation> EvaluationRepository::Get(const std::string& id) {
  auto st = store_->Prepare(absl::StrCat(kSelect, "WHERE id = ?"));
  if (!st.ok()) return st.status();
  st->Bind(1, id);
  auto all = All(*st);
  if (!all.ok()) return all.status();
  if (all->empty()) return absl::NotFoundError(absl::StrCat("evaluation record '", id, "' not found"));
  return all->front();
}

absl::StatusOr<std::optional<StoredEvaluation>> EvaluationRepository::FindLatestBaseline(
    const std::string& baseline_key) {
  auto st = store_->Prepare(
      absl::StrCat(kSelect, "WHERE baseline_key = ? AND adapter_id = '' ORDER BY created_at DESC, rowid DESC LIMIT 1"));
  if (!st.ok()) return st.status();
  st->Bind(1, baseline_key);
  auto all = All(*st);
  if (!all.ok()) return all.status();
  if (all->empty()) return std::optional<StoredEvaluation>();
  return std::optional<StoredEvaluation>(all->front());
}

absl::StatusOr<std::vector<StoredEvaluation>> EvaluationRepository::ListForAdapter(const std::string& adapter_id) {
  auto st = store_->Prepare(absl::StrCat(kSelect, "WHERE adapter_id = ? ORDER BY created_at, rowid"));
  if (!st.ok()) return st.status();
  st->Bind(1, adapter_id);
  return All(*st);
}

}  // namespace qlorad::store
