#include "core/service/gguf_export.h"

#include <mutex>


#include "absl/strings/str_cat.h"
#include "core/export/gguf_adapter_export.h"
#include "core/export/gguf_model_export.h"
#include "core/export/merge.h"
#include "core/export/ollama_modelfile.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad::service {
namespace {

constexpr char kAdapterFile[] = "adapter-lora.gguf";
constexpr char kMergedFile[] = "model.gguf";
constexpr char kBaseFile[] = "base.gguf";  // exported separately: qlorad-tool export-gguf --model

// The prompt format the adapter was trained with (its run record), "" when unknown.
std::string TrainedPromptFormat(const std::string& adapter_dir) {
  absl::StatusOr<std::string> text = ReadFileToString(adapter_dir + "/training_run.json");
  if (!text.ok()) return "";
  nlohmann::json record = nlohmann::json::parse(*text, nullptr, false);
  if (!record.is_object() || !record.contains("prompt_format") || !record["prompt_format"].is_string()) return "";
  return record["prompt_format"].get<std::string>();
}

// A merged export holds the whole base in fp32 on the host: one at a time per daemon.
std::mutex merged_export_mu;

absl::StatusOr<std::vector<std::string>> ExportMerged(const GgufExportInput& input, gguf::GgmlType type) {
  std::unique_lock<std::mutex> one_at_a_time(merged_export_mu, std::try_to_lock);
  if (!one_at_a_time.owns_lock())
    return absl::ResourceExhaustedError(
        "merge: another merged export is running (it holds the base in fp32 on the host); retry when it ends");
  QLORAD_ASSIGN_OR_RETURN(MergedWeights merged, MergeAdapterIntoWeights(input.base_model_dir, input.adapter_dir, {}));
  if (!input.adapter_id.empty()) merged.adapter_id = input.adapter_id;
  gguf::ModelExportOptions model;
  model.model_dir = input.base_model_dir;
  model.out_path = input.out_dir + "/" + kMergedFile;
  model.type = type;
  model.overrides = &merged.weights;
  model.metadata = merged.GgufMetadata();
  QLORAD_RETURN_IF_ERROR(gguf::ExportModelGguf(model).status());
  gguf::ModelfileOptions modelfile{input.base_model_dir, model.out_path, "", TrainedPromptFormat(input.adapter_dir)};
  QLORAD_RETURN_IF_ERROR(gguf::WriteModelfile(modelfile).status());
  return std::vector<std::string>{kMergedFile, "Modelfile"};
}

// The adapter alone (the base is large and the same for every adapter: exported once with
// qlorad-tool export-gguf); the Modelfile expects it as base.gguf beside the adapter.
absl::StatusOr<std::vector<std::string>> ExportAdapterOnly(const GgufExportInput& input, gguf::GgmlType type) {
  if (type != gguf::GgmlType::kF32 && type != gguf::GgmlType::kF16)
    return absl::InvalidArgumentError(absl::StrCat("type: ", input.type, " applies to merged exports only (GGUF LoRA ",
                                                   "tensors are f32 or f16; hint: set merge, or type f32|f16)"));
  gguf::AdapterExportOptions adapter;
  adapter.model_dir = input.base_model_dir;
  adapter.adapter_dir = input.adapter_dir;
  adapter.out_path = input.out_dir + "/" + kAdapterFile;
  adapter.type = type;
  QLORAD_RETURN_IF_ERROR(gguf::ExportAdapterGguf(adapter).status());
  gguf::ModelfileOptions modelfile{input.base_model_dir, input.out_dir + "/" + kBaseFile, adapter.out_path,
                                   TrainedPromptFormat(input.adapter_dir)};
  QLORAD_RETURN_IF_ERROR(gguf::WriteModelfile(modelfile).status());
  return std::vector<std::string>{kAdapterFile, "Modelfile"};
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExportAdapterGguf(const GgufExportInput& input) {
  QLORAD_ASSIGN_OR_RETURN(gguf::GgmlType type, gguf::ParseGgmlType(input.type));
  return input.merge ? ExportMerged(input, type) : ExportAdapterOnly(input, type);
}

}  // namespace qlorad::service
