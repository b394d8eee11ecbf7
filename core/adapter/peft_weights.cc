#include "core/adapter/peft_weights.h"

#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/adapter/peft_config.h"
#include "core/model/dtype.h"
#include "core/model/safetensors.h"
#include "core/model/safetensors_writer.h"
#include "core/model/tensor_io.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {
namespace {

absl::Status CheckFloatTensor(const TensorInfo& info) {
  if (info.dtype == DType::kF32 || info.dtype == DType::kF16 || info.dtype == DType::kBF16 || info.dtype == DType::kF64)
    return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", info.name, "' has dtype ", DTypeName(info.dtype),
                                                 " (hint: LoRA weights must be F32, F16, BF16 or F64)"));
}

}  // namespace

absl::Status SavePeftAdapter(const std::string& dir, const LoraConfig& config, const LoraModules& modules,
                             const std::string& base_model, const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> weights;
  std::map<std::string, at::Tensor> magnitudes;
  for (const auto& [module, layer] : modules) {
    weights[module] = {layer->lora_A.detach(), layer->lora_B.detach()};
    if (layer->lora_magnitude.defined()) magnitudes[module] = layer->lora_magnitude.detach();
  }
  if (config.use_dora != (magnitudes.size() == modules.size()))
    return absl::InternalError("SavePeftAdapter: use_dora does not match the modules' DoRA magnitudes");
  return SavePeftWeights(dir, config, weights, base_model, metadata, magnitudes);
}

absl::Status SavePeftWeights(const std::string& dir, const LoraConfig& config,
                             const std::map<std::string, std::pair<at::Tensor, at::Tensor>>& weights,
                             const std::string& base_model, const std::map<std::string, std::string>& metadata,
                             const std::map<std::string, at::Tensor>& magnitudes) {
  if (weights.empty()) return absl::FailedPreconditionError("no LoRA modules to save");
  QLORAD_RETURN_IF_ERROR(EnsureDirectory(dir));
  std::vector<NamedTensor> tensors;
  for (const auto& [module, ab] : weights) {
    tensors.push_back({PeftTensorName(module, true), ab.first.to(at::kCPU).contiguous()});
    tensors.push_back({PeftTensorName(module, false), ab.second.to(at::kCPU).contiguous()});
    if (auto m = magnitudes.find(module); m != magnitudes.end())
      tensors.push_back({PeftMagnitudeName(module), m->second.to(at::kCPU).contiguous()});
  }
  QLORAD_ASSIGN_OR_RETURN(std::vector<TensorSpec> specs, SpecsOf(tensors));
  std::map<std::string, std::string> header = metadata;
  header["format"] = "pt";
  QLORAD_RETURN_IF_ERROR(WriteSafetensors(dir + "/adapter_model.safetensors", specs, header, FillerOf(tensors)));
  return WritePeftConfig(dir, config, base_model);
}

absl::Status LoadPeftWeights(const std::string& dir, LoraModules& modules) {
  QLORAD_ASSIGN_OR_RETURN(std::string path, PeftWeightsPath(dir));
  QLORAD_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  std::map<std::string, int> seen;  // module -> 1 (A) | 2 (B) | 4 (DoRA magnitude)
  for (const TensorInfo& info : file->tensors()) {
    const std::string& name = info.name;
    QLORAD_ASSIGN_OR_RETURN(PeftTensorKey key, ParsePeftTensorKey(name, /*allow_magnitude=*/true));
    QLORAD_RETURN_IF_ERROR(CheckFloatTensor(info));
    auto it = modules.find(key.module);
    if (it == modules.end())
      return absl::InvalidArgumentError(absl::StrCat(
          "adapter tensor '", name, "': module '", key.module,
          "' does not exist in base model or is not targeted by adapter_config.json (hint: wrong base model, or "
          "target_modules / layers_to_transform / exclude_modules do not select it?)"));
    if (key.is_magnitude && !it->second->lora_magnitude.defined())
      return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "' is a DoRA magnitude but adapter_config.json ",
                                                     "does not set use_dora (hint: the config and weights disagree)"));
    at::Tensor& target = key.is_magnitude ? it->second->lora_magnitude : key.is_a ? it->second->lora_A : it->second->lora_B;
    if (key.is_magnitude && info.shape != target.sizes().vec())
      return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "' has shape ", info.ShapeString(),
                                                     " but module '", key.module, "' has ", target.size(0),
                                                     " output rows (hint: wrong base model?)"));
    const int64_t rank = key.is_a ? target.size(0) : target.dim() > 1 ? target.size(1) : 0;
    if (info.shape != target.sizes().vec())
      return absl::InvalidArgumentError(absl::StrCat(
          "adapter tensor '", name, "' has shape ", info.ShapeString(), " but module '", key.module, "' with rank ", rank,
          " (adapter_config.json r / rank_pattern) needs [", target.size(0), ", ", target.size(1),
          "] (hint: wrong base model, or a rank_pattern key that does not match this module?)"));
    QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*file, info));
    QLORAD_RETURN_IF_ERROR(CatchTorchErrors(absl::StrCat("loading '", name, "'"), [&] {
      at::NoGradGuard no_grad;
      target.copy_(view);  // converts F16/BF16/F64 to the compute dtype
    }));
    seen[key.module] |= key.is_magnitude ? 4 : key.is_a ? 1 : 2;
  }
  if (seen.empty()) return absl::InvalidArgumentError(absl::StrCat("adapter in '", dir, "' applies to zero modules"));
  for (const auto& [module, parts] : seen) {
    if ((parts & 3) != 3)
      return absl::InvalidArgumentError(absl::StrCat("adapter in '", dir, "': module '", module,
                                                     "' has only one of lora_A/lora_B (hint: the adapter file is incomplete)"));
    if (modules.at(module)->lora_magnitude.defined() && !(parts & 4))
      return absl::InvalidArgumentError(absl::StrCat("adapter in '", dir, "': module '", module, "' has no ",
                                                     "lora_magnitude_vector although use_dora is set (hint: the adapter file is incomplete)"));
  }
  return absl::OkStatus();
}

}  // namespace qlorad
