#include "server/tool/model_flags.h"

#include "absl/strings/str_cat.h"
#include "core/adapter/peft_config.h"
#include "core/adapter/peft_weights.h"
#include "core/model/device.h"
#include "core/quant/nf4_model.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad::tool {

absl::StatusOr<QuantOptions> QuantOptionsFromFlags(const Flags& flags) {
  QuantOptions options;
  QLORAD_ASSIGN_OR_RETURN(options.blocksize, flags.GetInt("blocksize", kernels::kDefaultBlocksize));
  QLORAD_RETURN_IF_ERROR(kernels::CheckBlocksize(options.blocksize));
  options.double_quant = !flags.GetBool("no-double-quant");
  return options;
}

void AddLoraToLoadOptions(const LoraConfig& config, LoadOptions& options, std::shared_ptr<LoraModules>& modules) {
  modules = std::make_shared<LoraModules>();
  options.linear_factory = MakeLoraLinearFactory(config, options.linear_factory, modules);
}

namespace {

absl::StatusOr<LoadOptions> BaseLoadOptions(const Flags& flags, const std::string& default_device, bool& quantized) {
  QLORAD_ASSIGN_OR_RETURN(std::string model_dir, flags.GetRequired("model"));
  LoadOptions options;
  QLORAD_ASSIGN_OR_RETURN(options.device, ParseDevice(flags.GetOr("device", default_device)));
  QLORAD_ASSIGN_OR_RETURN(options.dtype, ParseComputeDType(flags.GetOr("dtype", "auto"), options.device));
  QLORAD_ASSIGN_OR_RETURN(QuantOptions quant, QuantOptionsFromFlags(flags));
  QLORAD_ASSIGN_OR_RETURN(options.linear_factory,
                          MakeBaseLinearFactory(flags.GetOr("quantize", "none"), model_dir, quant, &quantized));
  return options;
}

}  // namespace

absl::StatusOr<ToolModel> LoadModelForTraining(const Flags& flags, const LoraConfig& lora) {
  ToolModel result;
  QLORAD_ASSIGN_OR_RETURN(LoadOptions options, BaseLoadOptions(flags, "auto", result.quantized));
  AddLoraToLoadOptions(lora, options, result.lora_modules);
  QLORAD_ASSIGN_OR_RETURN(result.loaded, LoadModel(flags.GetOr("model", ""), options));
  return result;
}

absl::StatusOr<ToolModel> LoadModelFromFlags(const Flags& flags, const std::string& default_device) {
  ToolModel result;
  QLORAD_ASSIGN_OR_RETURN(std::string model_dir, flags.GetRequired("model"));
  QLORAD_ASSIGN_OR_RETURN(LoadOptions options, BaseLoadOptions(flags, default_device, result.quantized));
  const std::string adapter = flags.GetOr("adapter", "");
  if (!adapter.empty()) {
    QLORAD_ASSIGN_OR_RETURN(LoraConfig config, ReadPeftConfig(adapter));
    QLORAD_RETURN_IF_ERROR(PeftWeightsPath(adapter).status());  // before the (slow) base load
    config.dropout = 0;  // inference
    AddLoraToLoadOptions(config, options, result.lora_modules);
  }
  QLORAD_ASSIGN_OR_RETURN(result.loaded, LoadModel(model_dir, options));
  if (!adapter.empty()) {
    QLORAD_ASSIGN_OR_RETURN(auto metadata, ReadPeftMetadata(adapter));
    auto it = metadata.find("qlorad_base_fingerprint");
    if (it != metadata.end() && it->second != result.loaded.fingerprint && !flags.GetBool("allow-base-mismatch"))
      return absl::FailedPreconditionError(absl::StrCat(
          "adapter '", adapter, "' was trained on base ", it->second, " but '", model_dir, "' is ",
          result.loaded.fingerprint, " (hint: wrong base model? --allow-base-mismatch overrides)"));
    QLORAD_RETURN_IF_ERROR(LoadPeftWeights(adapter, *result.lora_modules));
  }
  return result;
}

}  // namespace qlorad::tool
