#include "core/train/lora_model.h"

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
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

using Json = nlohmann::ordered_json;
constexpr char kKeyPrefix[] = "base_model.model.";

std::string ShortName(const std::string& module) { return module.substr(module.rfind('.') + 1); }

template <typename T>
const T* PatternValue(const std::map<std::string, T>& pattern, const std::string& module) {
  if (auto it = pattern.find(module); it != pattern.end()) return &it->second;
  if (auto it = pattern.find(ShortName(module)); it != pattern.end()) return &it->second;
  return nullptr;
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
  const int64_t* value = PatternValue(rank_pattern, module);
  return value ? *value : r;
}

double LoraConfig::AlphaFor(const std::string& module) const {
  const double* value = PatternValue(alpha_pattern, module);
  return value ? *value : alpha;
}

bool LoraConfig::Targets(const std::string& module) const {
  const std::string name = ShortName(module);
  for (const std::string& target : target_modules)
    if (target == name) return true;
  return false;
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
  Json rank_pattern = Json::object(), alpha_pattern = Json::object();
  for (const auto& [k, v] : config.rank_pattern) rank_pattern[k] = v;
  for (const auto& [k, v] : config.alpha_pattern) alpha_pattern[k] = v;
  Json json = {{"peft_type", "LORA"}, {"task_type", "CAUSAL_LM"}, {"base_model_name_or_path", base_model},
               {"r", config.r}, {"lora_alpha", config.alpha}, {"lora_dropout", config.dropout},
               {"target_modules", config.target_modules}, {"bias", "none"}, {"use_rslora", config.use_rslora},
               {"use_dora", false}, {"modules_to_save", nullptr}, {"fan_in_fan_out", false}, {"inference_mode", true},
               {"init_lora_weights", true}, {"rank_pattern", rank_pattern}, {"alpha_pattern", alpha_pattern},
               {"revision", nullptr}};
  return WriteFileAtomically(dir + "/adapter_config.json", json.dump(2) + "\n");
}

absl::StatusOr<LoraConfig> ReadPeftConfig(const std::string& dir) {
  const std::string path = dir + "/adapter_config.json";
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return absl::InvalidArgumentError(path + " is not a JSON object");
  auto refuse = [&](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, " ", why));
  };
  if (json.value("peft_type", "LORA") != "LORA") return refuse("peft_type", "must be LORA");
  if (json.value("use_dora", false)) return refuse("use_dora", "is not supported (DoRA adapters)");
  if (json.value("bias", "none") != "none") return refuse("bias", "must be \"none\"");
  if (json.contains("modules_to_save") && !json["modules_to_save"].is_null() && !json["modules_to_save"].empty())
    return refuse("modules_to_save", "is not supported (the adapter would replace base weights)");
  if (json.value("fan_in_fan_out", false)) return refuse("fan_in_fan_out", "must be false for Llama-family models");
  LoraConfig config;
  try {
    config.r = json.at("r").get<int64_t>();
    config.alpha = json.at("lora_alpha").get<double>();
    config.dropout = json.value("lora_dropout", 0.0);
    config.use_rslora = json.value("use_rslora", false);
    const auto& targets = json.at("target_modules");
    config.target_modules = targets.is_string() ? std::vector<std::string>{targets.get<std::string>()}
                                                : targets.get<std::vector<std::string>>();
    if (json.contains("rank_pattern")) config.rank_pattern = json["rank_pattern"].get<std::map<std::string, int64_t>>();
    if (json.contains("alpha_pattern")) config.alpha_pattern = json["alpha_pattern"].get<std::map<std::string, double>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  QLORAD_RETURN_IF_ERROR(config.Validate());
  return config;
}

absl::StatusOr<std::map<std::string, std::string>> ReadPeftMetadata(const std::string& dir) {
  QLORAD_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir + "/adapter_model.safetensors"));
  return file->metadata();
}

absl::Status LoadPeftWeights(const std::string& dir, LoraModules& modules) {
  QLORAD_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir + "/adapter_model.safetensors"));
  size_t applied = 0;
  for (const TensorInfo& info : file->tensors()) {
    std::string name = info.name;
    const bool is_a = absl::EndsWith(name, ".lora_A.weight"), is_b = absl::EndsWith(name, ".lora_B.weight");
    if (!absl::StartsWith(name, kKeyPrefix) || (!is_a && !is_b))
      return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name,
                                                     "' is not a PEFT LoRA key (base_model.model.<module>.lora_A/B.weight)"));
    std::string module = name.substr(std::strlen(kKeyPrefix), name.size() - std::strlen(kKeyPrefix) - 14);
    auto it = modules.find(module);
    if (it == modules.end())
      return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "': module '", module,
                                                     "' does not exist in base model or is not targeted (hint: maybe wrong "
                                                     "base model, or target_modules does not list it?)"));
    at::Tensor& target = is_a ? it->second->lora_A : it->second->lora_B;
    if (info.shape != target.sizes().vec())
      return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "' has shape ", info.ShapeString(),
                                                     " but the base module needs [", target.size(0), ", ", target.size(1),
                                                     "] (hint: maybe wrong base model, or r differs from adapter_config.json?)"));
    QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*file, info));
    QLORAD_RETURN_IF_ERROR(CatchTorchErrors(absl::StrCat("loading '", name, "'"), [&] {
      at::NoGradGuard no_grad;
      target.copy_(view);
    }));
    ++applied;
  }
  if (applied == 0) return absl::InvalidArgumentError(absl::StrCat("adapter in '", dir, "' applies to zero modules"));
  return absl::OkStatus();
}

}  // namespace qlorad
