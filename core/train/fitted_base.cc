#include "core/train/fitted_base.h"

#include <cmath>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "core/model/checkpoint.h"
#include "core/model/config.h"
#include "core/model/fingerprint.h"
#include "core/quant/nf4_model.h"
#include "core/util/status_macros.h"

namespace qlorad {
namespace {

absl::StatusOr<InitializedBase> CollectBase(const LoraModules& modules) {
  InitializedBase base;
  for (const auto& [module, layer] : modules) {
    if (layer->quantized()) {
      const Quant4bitState& state = layer->quantized_base()->state();
      if (!base.quant.has_value()) base.quant = OptionsOf(state);
      base.quantized.emplace(module, state.To(at::kCPU));
    } else {
      QLORAD_ASSIGN_OR_RETURN(at::Tensor weight, layer->BaseWeight());
      base.dense.emplace(module, weight.to(at::kCPU));
    }
  }
  if (base.quant.has_value() && !base.dense.empty())
    return absl::InternalError("an adapter's modules mix 4-bit and dense bases");
  return base;
}

}  // namespace

bool HasFittedBase(const LoraConfig& config) { return config.init == "loftq" || config.init == "pissa"; }

nlohmann::ordered_json InitErrorRecord(const InitErrorTally& tally) {
  auto relative = [&](double sq) { return tally.weight_sq > 0 ? std::sqrt(sq / tally.weight_sq) : 0.0; };
  nlohmann::ordered_json record;
  record["modules"] = tally.modules;
  record["relative_error_initialized"] = relative(tally.initialized_sq);
  if (tally.plain_quant_sq > 0) {
    record["relative_error_plain_quantization"] = relative(tally.plain_quant_sq);
    record["error_reduction_factor"] = std::sqrt(tally.plain_quant_sq / std::max(tally.initialized_sq, 1e-300));
  }
  return record;
}

absl::StatusOr<FittedBase> WriteFittedBase(const std::string& model_dir, const std::string& adapter_dir,
                                           const LoraConfig& config, const LoraModules& modules,
                                           const InitErrorTally& tally) {
  QLORAD_ASSIGN_OR_RETURN(InitializedBase base, CollectBase(modules));
  FittedBase fitted;
  fitted.path = (std::filesystem::path(adapter_dir) / kFittedBaseDir).string();
  std::error_code ignored;
  std::filesystem::remove_all(fitted.path, ignored);  // a previous attempt's: the same bytes again
  QLORAD_RETURN_IF_ERROR(WriteInitializedBase(model_dir, fitted.path, base));
  QLORAD_ASSIGN_OR_RETURN(ModelConfig model_config, LoadModelConfig(fitted.path));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(fitted.path));
  QLORAD_ASSIGN_OR_RETURN(fitted.fingerprint, ModelFingerprint(fitted.path, model_config, *checkpoint));
  fitted.record["init"] = config.init;
  if (config.init == "loftq") fitted.record["loftq_iterations"] = config.loftq_iterations;
  fitted.record["path"] = fitted.path;
  fitted.record["fingerprint"] = fitted.fingerprint;
  fitted.record["step0_error"] = InitErrorRecord(tally);
  return fitted;
}

}  // namespace qlorad
