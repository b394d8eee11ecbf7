// ServiceCore: datasets (ingestion through core/data, rows in the daemon store).
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/service/core_impl.h"
#include "core/service/audit.h"
#include "core/service/ids.h"
#include "core/service/paging.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

DatasetInfo ToInfo(const DatasetRow& row, const nlohmann::json& manifest) {
  DatasetInfo info{row.id, row.created_at, row.format, row.train_sha256, row.holdout_sha256,
                   row.train_examples, row.holdout_examples, {}, {}, manifest};
  if (manifest.contains("validation")) info.validation_report = manifest["validation"].value("report", nlohmann::json());
  info.pii_report = manifest.value("pii_report", nlohmann::json());
  return info;
}

}  // namespace

absl::StatusOr<DatasetInfo> ServiceCoreImpl::CreateDataset(const DatasetUpload& upload) {
  QLORAD_RETURN_IF_ERROR(data::ValidateDatasetId(upload.dataset_id));
  if (store_->GetDataset(upload.dataset_id).ok())
    return absl::AlreadyExistsError(absl::StrCat("dataset '", upload.dataset_id, "' already exists (hint: pick a new id)"));
  data::IngestOptions o;
  o.source_path = upload.source_path;
  o.dataset_id = upload.dataset_id;
  QLORAD_ASSIGN_OR_RETURN(o.reader.format, data::ParseFormatName(upload.format.empty() ? "auto" : upload.format));
  o.reader.csv = upload.csv;
  o.split.holdout_fraction = upload.holdout_fraction;
  o.split.seed = upload.seed;
  o.pii.enabled = upload.anonymize_pii;
  o.allow_small_dataset = upload.allow_small_dataset;
  const std::string& tok_dir = options_.base_model_dir;
  const tokenizer::Tokenizer* tok = &engine_->tokenizer();
  o.validation.token_counter = {absl::StrCat("tokenizer:", tok_dir), [tok](std::string_view text) -> size_t {
                                  auto ids = tok->Encode(text, /*add_special_tokens=*/false);
                                  return ids.ok() ? ids->size() : text.size() / 4;
                                }};
  QLORAD_ASSIGN_OR_RETURN(data::IngestResult result, datasets_->Ingest(o));
  const nlohmann::json& files = result.manifest["files"];
  DatasetRow row{result.dataset_id, Now(), result.manifest.value("format", ""), files["train"].value("sha256", ""),
                 files["holdout"].value("sha256", ""), upload.actor, static_cast<int64_t>(result.train_examples),
                 static_cast<int64_t>(result.holdout_examples)};
  absl::Status stored =
      store_->PutDataset(row, {{"train_sha256", row.train_sha256}, {"holdout_sha256", row.holdout_sha256}});
  if (!stored.ok()) {
    // No row, no dataset: the ingested directory goes too, so the same upload can be retried
    // (e.g. after another process released the database, UNAVAILABLE).
    std::error_code ec;
    std::filesystem::remove_all(result.directory, ec);
    return stored;
  }
  return ToInfo(row, result.manifest);
}

absl::StatusOr<DatasetInfo> ServiceCoreImpl::GetDataset(const std::string& id) {
  QLORAD_RETURN_IF_ERROR(data::ValidateDatasetId(id));
  QLORAD_ASSIGN_OR_RETURN(DatasetRow row, store_->GetDataset(id));
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json manifest, datasets_->GetManifest(id));
  return ToInfo(row, manifest);
}

absl::StatusOr<std::vector<DatasetInfo>> ServiceCoreImpl::ListDatasets(const Page& page, std::string* next_page_token) {
  QLORAD_ASSIGN_OR_RETURN(int64_t size, ValidatePageSize(page.page_size));
  QLORAD_ASSIGN_OR_RETURN(std::vector<DatasetRow> rows, store_->ListDatasets(page.page_token, size + 1));
  *next_page_token = TrimPage(rows, size) ? rows.back().id : "";
  std::vector<DatasetInfo> out;
  for (const DatasetRow& row : rows) out.push_back(ToInfo(row, nlohmann::json::object()));
  return out;
}

absl::Status ServiceCoreImpl::DeleteDataset(const std::string& id, const std::string& actor) {
  QLORAD_ASSIGN_OR_RETURN(const std::string dir, datasets_->DatasetDir(id));  // before anything is touched
  QLORAD_RETURN_IF_ERROR(store_->GetDataset(id).status());
  for (const char* status : {"queued", "running"}) {
    QLORAD_ASSIGN_OR_RETURN(std::vector<JobRow> jobs, store_->JobsWithStatus(status));
    for (const JobRow& job : jobs)
      if (job.spec.value("dataset_id", "") == id)
        return absl::FailedPreconditionError(absl::StrCat("dataset '", id, "' is used by ", status, " job ", job.id,
                                                          " (hint: cancel the job first)"));
  }
  QLORAD_RETURN_IF_ERROR(store_->DeleteDataset(id));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return Audit(*db_, actor, "delete", "dataset:" + id, nlohmann::json::object());
}

}  // namespace qlorad::service
