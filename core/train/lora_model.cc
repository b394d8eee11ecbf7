#include "core/train/lora_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <ATen/core/grad_mode.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model/safetensors.h"
#include "core/model/safetensors_writer.h"
#include "core/model/tensor_io.h"
#include "core/quant/nf4_model.h"
#include "core/train/peft_match.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

using Json = nlohmann::ordered_json;
constexpr char kKeyPrefix[] = "base_model.model.";

// Pattern keys in the order PEFT tries them: `order` first, then the rest in map order.
template <typename T>
std::vector<std::string> PatternKeys(const std::map<std::string, T>& pattern, const std::vector<std::string>& order) {
  std::vector<std::string> keys;
  for (const std::string& key : order)
    if (pattern.count(key) != 0 && std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  for (const auto& [key, value] : pattern)
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  return keys;
}

template <typename T>
const T* PatternValue(const std::map<std::string, T>& pattern, const std::vector<std::string>& order,
                      const std::string& module) {
  if (pattern.empty()) return nullptr;
  const std::vector<std::string> keys = PatternKeys(pattern, order);
  const std::string* key = PeftPatternKey(keys, module);
  return key ? &pattern.at(*key) : nullptr;
}

absl::StatusOr<std::shared_ptr<LinearLayer>> WrapWithLora(const LoraConfig& config, const std::string& module,
                                                          std::shared_ptr<LinearLayer> base) {
  LoraLinearOptions options(config.RankFor(module), config.AlphaFor(module));
  options.dropout(config.dropout).use_rslora(config.use_rslora);
  absl::StatusOr<LoraLinear> lora = absl::InvalidArgumentError("unsupported base layer for LoRA: " + module);
  if (auto* quantized = dynamic_cast<QuantizedLinearLayer*>(base.get())) {
    lora = LoraLinearImpl::Create(options, quantized->layer());
  } else if (auto* dense = dynamic_cast<DenseLinear*>(base.get())) {
    std::optional<at::Tensor> bias;
    if (dense->bias().defined()) bias = dense->bias();
    lora = LoraLinearImpl::Create(options, dense->weight(), bias);
  }
  if (!lora.ok()) return absl::Status(lora.status().code(), absl::StrCat(module, ": ", lora.status().message()));
  return std::shared_ptr<LinearLayer>(std::make_shared<LoraLinearLayer>(std::move(lora).value()));
}

}  // namespace

absl::Status LoraConfig::Validate() const {
  if (!target_modules_regex.empty() || !exclude_modules.empty() || !exclude_modules_regex.empty())
    return absl::InvalidArgumentError(
        "target_modules: training takes a list of projection names (a regex or exclude_modules only in loaded adapters)");
  if (r <= 0) return absl::InvalidArgumentError(absl::StrCat("lora r must be positive, got ", r));
  if (!(alpha > 0)) return absl::InvalidArgumentError(absl::StrCat("lora_alpha must be positive, got ", alpha));
  if (!(dropout >= 0 && dropout < 1)) return absl::InvalidArgumentError("lora_dropout must be in [0, 1)");
  if (target_modules.empty()) return absl::InvalidArgumentError("target_modules is empty");
  for (const std::string& name : target_modules)
    if (name != "q_proj" && name != "k_proj" && name != "v_proj" && name != "o_proj" && name != "gate_proj" &&
        name != "up_proj" && name != "down_proj")
      return absl::InvalidArgumentError(absl::StrCat("target_modules: '", name,
                                                     "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"));
  return absl::OkStatus();
}

int64_t LoraConfig::RankFor(const std::string& module) const {
  const int64_t* value = PatternValue(rank_pattern, rank_pattern_order, module);
  return value ? *value : r;
}

double LoraConfig::AlphaFor(const std::string& module) const {
  const double* value = PatternValue(alpha_pattern, alpha_pattern_order, module);
  return value ? *value : alpha;
}

double LoraConfig::ScalingFor(const std::string& module) const {
  const double rank = static_cast<double>(RankFor(module));
  return AlphaFor(module) / (use_rslora ? std::sqrt(rank) : rank);
}

bool LoraConfig::Targets(const std::string& module) const {
  return PeftTargets({target_modules, target_modules_regex, layers_to_transform, layers_pattern, exclude_modules,
                      exclude_modules_regex},
                     module);
}

LoraLinearLayer::LoraLinearLayer(LoraLinear layer) : layer_(register_module("lora", std::move(layer))) {}

LinearFactory MakeLoraLinearFactory(const LoraConfig& config, LinearFactory base_factory,
                                    std::shared_ptr<LoraModules> modules) {
  return [config, base_factory, modules](const LinearSpec& spec) -> absl::StatusOr<std::shared_ptr<LinearLayer>> {
    QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> base, base_factory ? base_factory(spec) : MakeDenseLinear(spec));
    if (!config.Targets(spec.module)) return base;
    QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> wrapped, WrapWithLora(config, spec.module, std::move(base)));
    modules->insert_or_assign(spec.module, static_cast<LoraLinearLayer*>(wrapped.get())->layer());
    return wrapped;
  };
}

std::vector<at::Tensor> LoraParameters(const LoraModules& modules) {
  std::vector<at::Tensor> params;
  for (const auto& [name, layer] : modules) {
    params.push_back(layer->lora_A);
    params.push_back(layer->lora_B);
  }
  return params;
}

absl::Status SavePeftAdapter(const std::string& dir, const LoraConfig& config, const LoraModules& modules,
                             const std::string& base_model, const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> weights;
  for (const auto& [module, layer] : modules) weights[module] = {layer->lora_A.detach(), layer->lora_B.detach()};
  return SavePeftWeights(dir, config, weights, base_model, metadata);
}

absl::Status SavePeftWeights(const std::string& dir, const LoraConfig& config,
                             const std::map<std::string, std::pair<at::Tensor, at::Tensor>>& weights,
                             const std::string& base_model, const std::map<std::string, std::string>& metadata) {
  if (weights.empty()) return absl::FailedPreconditionError("no LoRA modules to save");
  QLORAD_RETURN_IF_ERROR(EnsureDirectory(dir));
  std::vector<NamedTensor> tensors;
  for (const auto& [module, ab] : weights) {
    tensors.push_back({absl::StrCat(kKeyPrefix, module, ".lora_A.weight"), ab.first.to(at::kCPU).contiguous()});
    tensors.push_back({absl::StrCat(kKeyPrefix, module, ".lora_B.weight"), ab.second.to(at::kCPU).contiguous()});
  }
  QLORAD_ASSIGN_OR_RETURN(std::vector<TensorSpec> specs, SpecsOf(tensors));
  std::map<std::string, std::string> header = metadata;
  header["format"] = "pt";
  QLORAD_RETURN_IF_ERROR(WriteSafetensors(dir + "/adapter_model.safetensors", specs, header, FillerOf(tensors)));
  // Keys in lookup order, so PEFT (first match wins) reads the same ranks qlorad used.
  Json rank_pattern = Json::object(), alpha_pattern = Json::object();
  for (const std::string& k : PatternKeys(config.rank_pattern, config.rank_pattern_order))
    rank_pattern[k] = config.rank_pattern.at(k);
  for (const std::string& k : PatternKeys(config.alpha_pattern, config.alpha_pattern_order))
    alpha_pattern[k] = config.alpha_pattern.at(k);
  Json targets = config.target_modules_regex.empty() ? Json(config.target_modules) : Json(config.target_modules_regex);
  Json layers = config.layers_to_transform.empty() ? Json(nullptr) : Json(config.layers_to_transform);
  Json layers_pattern = config.layers_pattern.empty() ? Json(nullptr) : Json(config.layers_pattern);
  Json exclude = !config.exclude_modules_regex.empty() ? Json(config.exclude_modules_regex)
                 : config.exclude_modules.empty()      ? Json(nullptr)
                                                       : Json(config.exclude_modules);
  // r, lora_alpha and target_modules are what vLLM requires; the rest is PEFT's LoraConfig.
  Json json = {{"peft_type", "LORA"}, {"task_type", "CAUSAL_LM"}, {"base_model_name_or_path", base_model},
               {"r", config.r}, {"lora_alpha", config.alpha}, {"lora_dropout", config.dropout},
               {"target_modules", targets}, {"exclude_modules", exclude}, {"layers_to_transform", layers},
               {"layers_pattern", layers_pattern}, {"bias", "none"}, {"use_rslora", config.use_rslora},
               {"use_dora", false}, {"modules_to_save", nullptr}, {"fan_in_fan_out", false}, {"inference_mode", true},
               {"init_lora_weights", true}, {"rank_pattern", rank_pattern}, {"alpha_pattern", alpha_pattern},
               {"revision", nullptr}};
  return WriteFileAtomically(dir + "/adapter_config.json", json.dump(2) + "\n");
}

}  // namespace qlorad
