// MergeAdapterIntoWeights: loads the base through the same layer factories training and
// serving use (so dequantized weights are theirs, bit for bit), applies the PEFT adapter
// with the PEFT reader, and reads back W0 + scaling · B @ A per module.
#include "core/export/merge.h"

#include <filesystem>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/adapter/peft_config.h"
#include "core/model/loader.h"
#include "core/quant/nf4_model.h"
#include "core/quant/quantize_setting.h"
#include "core/train/lora_model.h"
#include "core/util/file_util.h"
#include "core/util/sha256.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

namespace fs = std::filesystem;
using LayerMap = std::map<std::string, std::shared_ptr<LinearLayer>>;

absl::StatusOr<bool> ParseBool(const std::string& text, const std::string& field) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  return absl::InvalidArgumentError(absl::StrCat(field, ": '", text, "' is not true or false"));
}

// The 4-bit quantization the adapter records for its training base: the safetensors
// metadata (qlorad_base_quantization, qlorad_base_quant_blocksize, qlorad_base_double_quant),
// else training_run.json base_model.{quantization, quant_blocksize, double_quant}. Unset
// block settings are qlorad's training defaults (64, double quant). nullopt: none recorded.
absl::StatusOr<std::optional<QuantOptions>> RecordedQuantization(const std::string& adapter_dir,
                                                                 const std::map<std::string, std::string>& metadata) {
  std::string type, blocksize, double_quant, source;
  if (auto it = metadata.find("qlorad_base_quantization"); it != metadata.end()) {
    source = adapter_dir + "/adapter_model.safetensors metadata qlorad_base_quantization";
    type = it->second;
    if (auto b = metadata.find("qlorad_base_quant_blocksize"); b != metadata.end()) blocksize = b->second;
    if (auto d = metadata.find("qlorad_base_double_quant"); d != metadata.end()) double_quant = d->second;
  } else {
    const std::string path = adapter_dir + "/training_run.json";
    if (!fs::exists(path)) return std::optional<QuantOptions>();
    QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    nlohmann::json record = nlohmann::json::parse(text, nullptr, false);
    if (record.is_discarded() || !record.is_object()) return absl::InvalidArgumentError(path + " is not a JSON object");
    const nlohmann::json base = record.value("base_model", nlohmann::json::object());
    if (!base.is_object() || !base.contains("quantization")) return std::optional<QuantOptions>();
    source = path + " base_model.quantization";
    try {
      type = base.at("quantization").get<std::string>();
      if (base.contains("quant_blocksize")) blocksize = std::to_string(base.at("quant_blocksize").get<int64_t>());
      if (base.contains("double_quant")) double_quant = base.at("double_quant").get<bool>() ? "true" : "false";
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": base_model: ", e.what()));
    }
  }
  QLORAD_ASSIGN_OR_RETURN(std::optional<kernels::QuantType> parsed, ParseQuantizeSetting(type, source));
  if (!parsed.has_value()) return std::optional<QuantOptions>();
  QuantOptions options;
  options.quant_type = *parsed;
  if (!blocksize.empty()) {
    try {
      options.blocksize = std::stoll(blocksize);
    } catch (const std::exception&) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": quant blocksize '", blocksize, "' is not an integer"));
    }
    QLORAD_RETURN_IF_ERROR(kernels::CheckBlocksize(options.blocksize));
  }
  if (!double_quant.empty()) {
    QLORAD_ASSIGN_OR_RETURN(options.double_quant, ParseBool(double_quant, source + " double_quant"));
  }
  return std::optional<QuantOptions>(options);
}

std::string DescribeQuant(const QuantOptions& q) {
  return absl::StrCat(kernels::QuantTypeName(q.quant_type), " blocksize ", q.blocksize,
                      q.double_quant ? " double-quant" : "");
}

std::string AdapterId(const std::string& adapter_dir, const std::map<std::string, std::string>& metadata) {
  for (const char* key : {"qlorad_adapter_id", "qlorad_job"})
    if (auto it = metadata.find(key); it != metadata.end() && !it->second.empty()) return it->second;
  fs::path path = fs::path(adapter_dir).lexically_normal();
  if (!path.has_filename()) path = path.parent_path();
  return path.filename().string();
}

// Resolves kAuto and checks the choice against what the adapter and the base allow;
// sets merged.onto / merged.quantization and returns the base layers' factory.
absl::StatusOr<LinearFactory> ResolveBase(const std::string& model_dir, const std::string& adapter_dir,
                                          const MergeOptions& options,
                                          const std::map<std::string, std::string>& metadata, MergedWeights& merged) {
  const std::string declared = DeclaredQuantization(model_dir);
  const bool prequantized = declared != "none";
  std::optional<QuantOptions> quant = options.quantize;
  if (!quant.has_value()) {
    QLORAD_ASSIGN_OR_RETURN(quant, RecordedQuantization(adapter_dir, metadata));
  }
  MergeOnto onto = options.onto;
  if (onto == MergeOnto::kAuto) onto = (prequantized || quant.has_value()) ? MergeOnto::kDequant : MergeOnto::kOriginal;
  merged.onto = onto;
  if (onto == MergeOnto::kOriginal) {
    if (prequantized)
      return absl::InvalidArgumentError(absl::StrCat(
          "merge_onto original: '", model_dir, "' is a pre-quantized (bitsandbytes ", declared,
          ") checkpoint and has no original weights (hint: use merge_onto dequant, or the full-precision base)"));
    return LinearFactory();  // dense, the checkpoint's weights
  }
  if (prequantized) {
    merged.quantization = absl::StrCat(declared, " (pre-quantized checkpoint)");
    return MakeBaseLinearFactory("none", model_dir);  // reads the stored 4-bit states
  }
  if (!quant.has_value())
    return absl::InvalidArgumentError(absl::StrCat(
        "merge_onto dequant: adapter '", adapter_dir,
        "' records no 4-bit base (training_run.json base_model.quantization is absent or 'none'), so it was trained "
        "on full-precision weights (hint: merge onto original, or name the quantization it was trained against, "
        "e.g. --quantize nf4)"));
  merged.quantization = DescribeQuant(*quant);
  return MakeBaseLinearFactory(kernels::QuantTypeName(quant->quant_type), model_dir, *quant);
}

// Wraps `base` so every layer it builds is recorded by module name.
LinearFactory CapturingFactory(LinearFactory base, std::shared_ptr<LayerMap> layers) {
  return [base, layers](const LinearSpec& spec) -> absl::StatusOr<std::shared_ptr<LinearLayer>> {
    QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> layer, base ? base(spec) : MakeDenseLinear(spec));
    (*layers)[spec.module] = layer;
    return layer;
  };
}

absl::Status CollectWeights(const LayerMap& layers, const LoraModules& modules, MergedWeights& merged) {
  at::NoGradGuard no_grad;
  for (const auto& [module, layer] : layers) {
    const std::string name = module + ".weight";
    if (auto it = modules.find(module); it != modules.end()) {
      QLORAD_ASSIGN_OR_RETURN(at::Tensor base, it->second->BaseWeight());
      QLORAD_ASSIGN_OR_RETURN(merged.weights[name],
                              CatchTorchErrors(absl::StrCat("merging '", module, "'"), [&]() -> absl::StatusOr<at::Tensor> {
                                return it->second->Merge(base).to(at::kCPU).contiguous();
                              }));
      ++merged.adapted_modules;
    } else if (auto* quantized = dynamic_cast<QuantizedLinearLayer*>(layer.get())) {
      QLORAD_ASSIGN_OR_RETURN(at::Tensor w, quantized->layer()->DequantizedWeight(at::kFloat));
      merged.weights[name] = w.to(at::kCPU).contiguous();
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MergeOnto> ParseMergeOnto(const std::string& name, const std::string& field) {
  if (name == "auto") return MergeOnto::kAuto;
  if (name == "dequant") return MergeOnto::kDequant;
  if (name == "original") return MergeOnto::kOriginal;
  return absl::InvalidArgumentError(absl::StrCat(field, ": '", name, "' is not one of dequant, original, auto"));
}

const char* MergeOntoName(MergeOnto onto) {
  switch (onto) {
    case MergeOnto::kAuto: return "auto";
    case MergeOnto::kDequant: return "dequant";
    case MergeOnto::kOriginal: return "original";
  }
  return "?";
}

std::map<std::string, std::string> MergedWeights::Metadata() const {
  std::map<std::string, std::string> metadata = {{"qlorad_base_fingerprint", base_fingerprint},
                                                 {"qlorad_adapter_id", adapter_id},
                                                 {"qlorad_adapter_sha256", adapter_sha256},
                                                 {"qlorad_merge_onto", MergeOntoName(onto)}};
  if (!quantization.empty()) metadata["qlorad_merge_quantization"] = quantization;
  return metadata;
}

std::map<std::string, std::string> MergedWeights::GgufMetadata() const {
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : Metadata()) metadata["qlorad." + key.substr(sizeof("qlorad_") - 1)] = value;
  return metadata;
}

absl::StatusOr<MergedWeights> MergeAdapterIntoWeights(const std::string& model_dir, const std::string& adapter_dir,
                                                      const MergeOptions& options) {
  QLORAD_ASSIGN_OR_RETURN(LoraConfig config, ReadPeftConfig(adapter_dir));
  config.dropout = 0;
  QLORAD_ASSIGN_OR_RETURN(auto metadata, ReadPeftMetadata(adapter_dir));
  MergedWeights merged;
  merged.adapter_id = AdapterId(adapter_dir, metadata);
  QLORAD_ASSIGN_OR_RETURN(merged.adapter_sha256, Sha256File(adapter_dir + "/adapter_model.safetensors"));
  QLORAD_ASSIGN_OR_RETURN(LinearFactory base, ResolveBase(model_dir, adapter_dir, options, metadata, merged));

  auto layers = std::make_shared<LayerMap>();
  auto modules = std::make_shared<LoraModules>();
  LoadOptions load;
  load.dtype = at::kFloat;
  load.linear_factory = MakeLoraLinearFactory(config, CapturingFactory(std::move(base), layers), modules);
  QLORAD_ASSIGN_OR_RETURN(LoadedModel model, LoadModel(model_dir, load));
  merged.base_fingerprint = model.fingerprint;
  // Tensor-level errors first: they name the tensor that does not fit this base.
  QLORAD_RETURN_IF_ERROR(LoadPeftWeights(adapter_dir, *modules));
  if (auto it = metadata.find("qlorad_base_fingerprint");
      it != metadata.end() && it->second != model.fingerprint && !options.allow_base_mismatch)
    return absl::FailedPreconditionError(absl::StrCat(
        "adapter '", adapter_dir, "' was trained on base ", it->second, " but '", model_dir, "' is ",
        model.fingerprint, " (hint: wrong base model? allow_base_mismatch / --allow-base-mismatch overrides)"));
  QLORAD_RETURN_IF_ERROR(CollectWeights(*layers, *modules, merged));
  return merged;
}

}  // namespace qlorad
