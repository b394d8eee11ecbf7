// AdapterCatalog: resolve, describe, list, and registration of a finished job's adapter.
#include "core/service/adapter_catalog.h"

#include "absl/strings/str_cat.h"
#include "core/service/ids.h"
#include "core/service/paging.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace qlorad::service {

absl::StatusOr<std::string> AdapterCatalog::Resolve(const std::string& ref) {
  if (ref.empty()) return absl::InvalidArgumentError("adapter: must name an adapter id (name@version) or an alias");
  if (ref.find('@') != std::string::npos) {
    QLORAD_RETURN_IF_ERROR(store_->Get(ref).status());
    return ref;
  }
  QLORAD_ASSIGN_OR_RETURN(std::optional<std::string> target, store_->ResolveAlias(ref));
  if (!target) return absl::NotFoundError(absl::StrCat("adapter '", ref, "' is neither an adapter id (name@version) nor an alias"));
  return *target;
}

absl::StatusOr<AdapterInfo> AdapterCatalog::Describe(const AdapterRow& row) {
  const std::optional<serve::AdapterResidency> residency = engine_->ResidencyOf(row.id);
  AdapterInfo info{row.id, row.name, row.job_id, row.path, row.base_fingerprint, row.dataset_id, row.created_at, "", "",
                   row.version, residency.has_value(), {}};
  QLORAD_ASSIGN_OR_RETURN(info.aliases, store_->AliasesOf(row.id));
  if (residency) {
    info.residency = serve::AdapterTierName(residency->tier);
    info.pinned = residency->pinned;
    info.placements = residency->loads;
    info.evictions = residency->evictions;
  }
  QLORAD_ASSIGN_OR_RETURN(store::AdapterVersion version, store_->Version(row.id));
  info.state = store::AdapterStateName(version.state);
  info.evaluation_id = version.evaluation_id;
  absl::MutexLock lock(&unloadable_mu_);
  if (auto it = unloadable_.find(row.id); it != unloadable_.end()) info.load_error = it->second;
  return info;
}

absl::StatusOr<AdapterInfo> AdapterCatalog::Get(const std::string& ref) {
  QLORAD_ASSIGN_OR_RETURN(std::string id, Resolve(ref));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->Get(id));
  return Describe(row);
}

absl::StatusOr<std::vector<AdapterInfo>> AdapterCatalog::List(const Page& page, std::string* next_page_token) {
  QLORAD_ASSIGN_OR_RETURN(int64_t size, ValidatePageSize(page.page_size));
  QLORAD_ASSIGN_OR_RETURN(std::vector<AdapterRow> rows, store_->List(page.page_token, size + 1));
  *next_page_token = TrimPage(rows, size) ? rows.back().id : "";
  std::vector<AdapterInfo> out;
  for (const AdapterRow& row : rows) {
    QLORAD_ASSIGN_OR_RETURN(AdapterInfo info, Describe(row));
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::optional<tokenizer::PromptFormat>> AdapterCatalog::TrainedPromptFormat(const std::string& adapter_id) {
  if (adapter_id.empty()) return std::optional<tokenizer::PromptFormat>();
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->Get(adapter_id));
  auto text = ReadFileToString(row.path + "/training_run.json");
  if (!text.ok()) return std::optional<tokenizer::PromptFormat>();  // imported without a run record
  const auto record = nlohmann::json::parse(*text, nullptr, false);
  if (!record.is_object() || !record.contains("prompt_format") || !record["prompt_format"].is_string())
    return std::optional<tokenizer::PromptFormat>();
  QLORAD_ASSIGN_OR_RETURN(tokenizer::PromptFormat format,
                          tokenizer::PromptFormatFromName(record["prompt_format"].get<std::string>()));
  return std::optional<tokenizer::PromptFormat>(format);
}

absl::StatusOr<std::string> AdapterCatalog::RegisterTrained(const TrainedAdapter& adapter) {
  absl::MutexLock lock(&commit_mu_);  // versions are taken and registered one at a time (imports too)
  QLORAD_ASSIGN_OR_RETURN(int64_t version, store_->NextVersion(adapter.name));
  AdapterRow row{absl::StrCat(adapter.name, "@", version), adapter.name, version, adapter.job_id, adapter.dir,
                 adapter.base_fingerprint, adapter.dataset_id, Now(), false};
  QLORAD_RETURN_IF_ERROR(store_->Register(row, adapter.actor.empty() ? "system" : adapter.actor,
                                          {{"job_id", adapter.job_id}, {"dataset_id", adapter.dataset_id},
                                           {"final_loss", adapter.final_loss}}));
  return row.id;
}

}  // namespace qlorad::service
