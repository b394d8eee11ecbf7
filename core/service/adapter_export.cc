// AdapterCatalog: Export — which files leave the server for an export request.
// peft: the adapter directory itself; gguf: a scratch directory the GGUF exporter fills.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/service/adapter_catalog.h"
#include "core/service/audit.h"
#include "core/service/gguf_export.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

absl::Status CheckExportRequest(const AdapterExportRequest& r) {
  if (r.format != "peft" && r.format != "gguf")
    return absl::InvalidArgumentError(absl::StrCat("format: '", r.format, "' is not peft or gguf"));
  if (r.format == "peft" && (!r.type.empty() || r.merge))
    return absl::InvalidArgumentError(absl::StrCat(r.merge ? "merge" : "type", ": applies only to format gguf"));
  if (r.format == "gguf" && !r.type.empty() && r.type != "f32" && r.type != "f16" && r.type != "q8_0" && r.type != "q4_0")
    return absl::InvalidArgumentError(absl::StrCat("type: '", r.type, "' is not f32, f16, q8_0 or q4_0"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AdapterExport> AdapterCatalog::Export(const AdapterExportRequest& request) {
  AdapterExportRequest r = request;
  if (r.format.empty()) r.format = "peft";
  QLORAD_RETURN_IF_ERROR(CheckExportRequest(r));
  QLORAD_ASSIGN_OR_RETURN(std::string id, Resolve(r.adapter));
  QLORAD_ASSIGN_OR_RETURN(AdapterRow row, store_->Get(id));
  AdapterExport out;
  std::error_code ec;
  if (r.format == "peft") {
    out.dir = row.path;
    for (const char* name : {"adapter_config.json", "adapter_model.safetensors", "training_run.json"}) {
      if (std::filesystem::exists(row.path + "/" + name, ec)) {
        out.files.push_back(name);
      } else if (std::string(name) != "training_run.json") {  // imported adapters may have no run record
        return absl::DataLossError(absl::StrCat(row.path, "/", name, " is missing"));
      }
    }
  } else {
    QLORAD_ASSIGN_OR_RETURN(out.dir, NewStagingDir("export"));
    out.temporary = true;
    auto files = ExportAdapterGguf({row.path, options_.base_model_dir, r.type.empty() ? "f32" : r.type, r.merge, out.dir, id});
    if (!files.ok()) {
      std::filesystem::remove_all(out.dir, ec);
      return files.status();
    }
    out.files = std::move(*files);
  }
  QLORAD_RETURN_IF_ERROR(Audit(*db_, r.actor, "export", "adapter:" + id,
                               {{"format", r.format}, {"type", r.type}, {"merge", r.merge}, {"files", out.files}}));
  return out;
}

}  // namespace qlorad::service
