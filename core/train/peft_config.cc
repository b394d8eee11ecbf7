// Reading PEFT adapter directories written by any PEFT writer: adapter_config.json
// with PEFT's semantics, the tensor keys PEFT writes, and the weights file.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <type_traits>

#include <ATen/core/grad_mode.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model/safetensors.h"
#include "core/model/tensor_io.h"
#include "core/train/lora_model.h"
#include "core/train/peft_match.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

using Json = nlohmann::ordered_json;
constexpr char kKeyPrefix[] = "base_model.model.";

// Fields whose presence changes what the adapter computes in ways qlorad does not implement.
struct Unsupported {
  const char* field;
  const char* why;
};
const Unsupported kUnsupported[] = {
    {"use_dora", "is set: DoRA adapters are not supported until the training-methods issue supports them"},
    {"modules_to_save",
     "is set: adapters that replace whole base modules are not supported until the training-methods issue supports them"},
    {"lora_bias", "is set: a bias on lora_B is not supported"},
    {"fan_in_fan_out", "is set: Llama-family projections are nn.Linear (fan_in_fan_out must be false)"},
    {"target_parameters", "is set: LoRA on bare parameters (e.g. MoE experts) is not supported"},
    {"layer_replication", "is set: replicating base layers is not supported"},
    {"trainable_token_indices", "is set: trainable embedding tokens are not supported"},
    {"alora_invocation_tokens", "is set: activated LoRA (aLoRA) is not supported"},
    {"use_qalora", "is set: QA-LoRA is not supported"},
    {"use_bdlora", "is set: block-diagonal LoRA is not supported"},
    {"arrow_config", "is set: Arrow routing is not supported"},
    {"monteclora_config", "is set: MonteCLoRA is not supported"},
    {"kasa_config", "is set: KaSA is not supported"},
};

bool IsSet(const Json& value) {
  if (value.is_null()) return false;
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number()) return value.get<double>() != 0;
  return !value.empty();  // strings, lists, objects
}

// target_modules / exclude_modules: a list of names, or one string (a regex).
absl::Status ReadNames(const Json& json, const std::string& field, std::vector<std::string>& list, std::string& regex) {
  auto it = json.find(field);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (it->is_string()) {
    regex = it->get<std::string>();
    return absl::OkStatus();
  }
  if (it->is_array() && std::all_of(it->begin(), it->end(), [](const Json& v) { return v.is_string(); })) {
    list = it->get<std::vector<std::string>>();
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(field, " must be a list of module names or a regex string"));
}

absl::Status ReadLayers(const Json& json, LoraConfig& config) {
  if (auto it = json.find("layers_to_transform"); it != json.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      config.layers_to_transform = {it->get<int64_t>()};
    } else if (it->is_array() && std::all_of(it->begin(), it->end(), [](const Json& v) { return v.is_number_integer(); })) {
      config.layers_to_transform = it->get<std::vector<int64_t>>();
    } else {
      return absl::InvalidArgumentError("layers_to_transform must be a layer index or a list of them");
    }
  }
  if (auto it = json.find("layers_pattern"); it != json.end() && !it->is_null()) {
    if (it->is_string()) {
      if (!it->get<std::string>().empty()) config.layers_pattern = {it->get<std::string>()};
    } else if (it->is_array() && std::all_of(it->begin(), it->end(), [](const Json& v) { return v.is_string(); })) {
      config.layers_pattern = it->get<std::vector<std::string>>();
    } else {
      return absl::InvalidArgumentError("layers_pattern must be a string or a list of strings");
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadPattern(const Json& json, const std::string& field, std::map<std::string, T>& pattern,
                         std::vector<std::string>& order) {
  auto it = json.find(field);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return absl::InvalidArgumentError(absl::StrCat(field, " must be an object (regex -> value)"));
  for (const auto& item : it->items()) {
    const std::string key = item.key();
    const Json& value = item.value();
    const bool ok = std::is_integral_v<T> ? value.is_number_integer() && value.get<int64_t>() > 0 : value.is_number();
    if (!ok)
      return absl::InvalidArgumentError(absl::StrCat(field, "[\"", key, "\"] must be ",
                                                     std::is_integral_v<T> ? "a positive integer" : "a number"));
    QLORAD_RETURN_IF_ERROR(CheckPeftRegex(absl::StrCat(field, "[\"", key, "\"]"), absl::StrCat("(.*\\.)?(", key, ")$")));
    pattern[key] = value.get<T>();
    order.push_back(key);
  }
  return absl::OkStatus();
}

absl::Status ReadSelection(const Json& json, LoraConfig& config) {
  config.target_modules.clear();
  if (!json.contains("target_modules") || json["target_modules"].is_null())
    return absl::InvalidArgumentError("target_modules is missing (hint: PEFT writes the targeted module names here)");
  QLORAD_RETURN_IF_ERROR(ReadNames(json, "target_modules", config.target_modules, config.target_modules_regex));
  if (absl::AsciiStrToLower(config.target_modules_regex) == "all-linear") {  // PEFT: every linear layer but the output head
    config.target_modules_regex.clear();
    config.target_modules = LoraConfig().target_modules;
  }
  if (config.target_modules.empty() && config.target_modules_regex.empty())
    return absl::InvalidArgumentError("target_modules is empty");
  QLORAD_RETURN_IF_ERROR(ReadNames(json, "exclude_modules", config.exclude_modules, config.exclude_modules_regex));
  QLORAD_RETURN_IF_ERROR(ReadLayers(json, config));
  if (!config.target_modules_regex.empty() && (json.contains("layers_to_transform") && !json["layers_to_transform"].is_null()))
    return absl::InvalidArgumentError("layers_to_transform cannot be used when target_modules is a regex string (PEFT refuses it too)");
  if (!config.layers_pattern.empty() && (!json.contains("layers_to_transform") || json["layers_to_transform"].is_null()))
    return absl::InvalidArgumentError("layers_pattern needs layers_to_transform (PEFT refuses it too)");
  if (!config.target_modules_regex.empty())
    QLORAD_RETURN_IF_ERROR(CheckPeftRegex("target_modules", config.target_modules_regex));
  if (!config.exclude_modules_regex.empty())
    QLORAD_RETURN_IF_ERROR(CheckPeftRegex("exclude_modules", config.exclude_modules_regex));
  for (const std::string& pattern : config.layers_pattern)
    QLORAD_RETURN_IF_ERROR(CheckPeftRegex("layers_pattern", absl::StrCat(".*?\\.", pattern, "\\.(\\d+)\\.")));
  return absl::OkStatus();
}

absl::StatusOr<LoraConfig> ParsePeftConfig(const Json& json) {
  if (json.contains("peft_type") && json["peft_type"] != "LORA") return absl::InvalidArgumentError("peft_type must be LORA");
  for (const Unsupported& u : kUnsupported)
    if (json.contains(u.field) && IsSet(json[u.field])) return absl::InvalidArgumentError(absl::StrCat(u.field, " ", u.why));
  if (json.contains("bias") && !json["bias"].is_null() && json["bias"] != "none")
    return absl::InvalidArgumentError("bias must be \"none\" (trained base biases are not supported)");
  LoraConfig config;
  if (!json.contains("r") || !json["r"].is_number_integer() || json["r"].get<int64_t>() <= 0)
    return absl::InvalidArgumentError("r must be a positive integer");
  config.r = json["r"].get<int64_t>();
  if (!json.contains("lora_alpha") || !json["lora_alpha"].is_number())
    return absl::InvalidArgumentError("lora_alpha must be a number");
  config.alpha = json["lora_alpha"].get<double>();
  if (!std::isfinite(config.alpha) || config.alpha <= 0)
    return absl::InvalidArgumentError("lora_alpha must be a positive number (llama.cpp reads alpha 0 as 'no scaling')");
  config.dropout = json.contains("lora_dropout") && json["lora_dropout"].is_number() ? json["lora_dropout"].get<double>() : 0.0;
  if (json.contains("use_rslora") && !json["use_rslora"].is_null()) {
    if (!json["use_rslora"].is_boolean()) return absl::InvalidArgumentError("use_rslora must be true or false");
    config.use_rslora = json["use_rslora"].get<bool>();
  }
  QLORAD_RETURN_IF_ERROR(ReadSelection(json, config));
  QLORAD_RETURN_IF_ERROR(ReadPattern(json, "rank_pattern", config.rank_pattern, config.rank_pattern_order));
  QLORAD_RETURN_IF_ERROR(ReadPattern(json, "alpha_pattern", config.alpha_pattern, config.alpha_pattern_order));
  return config;
}

absl::Status CheckFloatTensor(const TensorInfo& info) {
  if (info.dtype == DType::kF32 || info.dtype == DType::kF16 || info.dtype == DType::kBF16 || info.dtype == DType::kF64)
    return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", info.name, "' has dtype ", DTypeName(info.dtype),
                                                 " (hint: LoRA weights must be F32, F16, BF16 or F64)"));
}

}  // namespace

absl::StatusOr<LoraConfig> ReadPeftConfig(const std::string& dir) {
  const std::string path = dir + "/adapter_config.json";
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  Json json = Json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return absl::InvalidArgumentError(path + " is not a JSON object");
  absl::StatusOr<LoraConfig> config = absl::InternalError("unset");
  try {
    config = ParsePeftConfig(json);
  } catch (const nlohmann::json::exception& e) {  // a field of an unexpected JSON type
    config = absl::InvalidArgumentError(e.what());
  }
  if (!config.ok()) return absl::Status(config.status().code(), absl::StrCat(path, ": ", config.status().message()));
  return config;
}

absl::StatusOr<std::string> PeftWeightsPath(const std::string& dir) {
  const std::string path = dir + "/adapter_model.safetensors";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return path;
  if (std::filesystem::exists(dir + "/adapter_model.bin", ec))
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": adapter_model.bin is a pickle file, which qlorad does not load (unpickling can run code); hint: save the "
             "adapter with PEFT's save_pretrained(..., safe_serialization=True), or convert it once with torch.load(..., "
             "weights_only=True) and safetensors.torch.save_file to adapter_model.safetensors"));
  return absl::NotFoundError(absl::StrCat(path, " does not exist (hint: a PEFT adapter directory holds adapter_config.json ",
                                          "and adapter_model.safetensors)"));
}

absl::StatusOr<PeftTensorKey> ParsePeftTensorKey(const std::string& name) {
  auto refuse = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "' ", why));
  };
  if (absl::StrContains(name, ".lora_embedding_"))
    return refuse("is an embedding adapter (lora_embedding_A/B), which qlorad does not support");
  if (absl::StrContains(name, ".lora_magnitude_vector")) return refuse("is a DoRA magnitude (use_dora), not supported until the training-methods issue supports DoRA");
  if (!absl::StartsWith(name, kKeyPrefix))
    return refuse("is not a PEFT LoRA key (hint: expected base_model.model.<module>.lora_A.weight or .lora_B.weight)");
  const std::string rest = name.substr(sizeof(kKeyPrefix) - 1);
  size_t at = rest.rfind(".lora_A.");
  const size_t b_at = rest.rfind(".lora_B.");
  const bool is_a = at != std::string::npos && (b_at == std::string::npos || at > b_at);
  if (!is_a) at = b_at;
  if (at == std::string::npos || at == 0)
    return refuse("is not a PEFT LoRA key (hint: expected base_model.model.<module>.lora_A.weight or .lora_B.weight)");
  const std::string tail = rest.substr(at + 8);  // after ".lora_A."
  if (absl::EndsWith(tail, "bias")) return refuse("is a lora_B bias (lora_bias), which qlorad does not support");
  const size_t dot = tail.find('.');
  if (tail != "weight" && !(dot != std::string::npos && dot > 0 && tail.substr(dot) == ".weight" &&
                            tail.find('.', dot + 1) == std::string::npos))
    return refuse("is not a PEFT LoRA key (hint: expected <module>.lora_A.weight, or <module>.lora_A.<adapter>.weight)");
  return PeftTensorKey{rest.substr(0, at), is_a};
}

absl::StatusOr<std::map<std::string, std::string>> ReadPeftMetadata(const std::string& dir) {
  QLORAD_ASSIGN_OR_RETURN(std::string path, PeftWeightsPath(dir));
  QLORAD_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  return file->metadata();
}

absl::Status LoadPeftWeights(const std::string& dir, LoraModules& modules) {
  QLORAD_ASSIGN_OR_RETURN(std::string path, PeftWeightsPath(dir));
  QLORAD_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  std::map<std::string, int> seen;  // module -> 1 (A) | 2 (B)
  for (const TensorInfo& info : file->tensors()) {
    const std::string& name = info.name;
    QLORAD_ASSIGN_OR_RETURN(PeftTensorKey key, ParsePeftTensorKey(name));
    QLORAD_RETURN_IF_ERROR(CheckFloatTensor(info));
    auto it = modules.find(key.module);
    if (it == modules.end())
      return absl::InvalidArgumentError(absl::StrCat(
          "adapter tensor '", name, "': module '", key.module,
          "' does not exist in base model or is not targeted by adapter_config.json (hint: wrong base model, or "
          "target_modules / layers_to_transform / exclude_modules do not select it?)"));
    at::Tensor& target = key.is_a ? it->second->lora_A : it->second->lora_B;
    const int64_t rank = key.is_a ? target.size(0) : target.size(1);
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
    seen[key.module] |= key.is_a ? 1 : 2;
  }
  if (seen.empty()) return absl::InvalidArgumentError(absl::StrCat("adapter in '", dir, "' applies to zero modules"));
  for (const auto& [module, parts] : seen)
    if (parts != 3)
      return absl::InvalidArgumentError(absl::StrCat("adapter in '", dir, "': module '", module,
                                                     "' has only one of lora_A/lora_B (hint: the adapter file is incomplete)"));
  return absl::OkStatus();
}

}  // namespace qlorad
