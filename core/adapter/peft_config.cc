// Reading PEFT adapter directories written by any PEFT writer: adapter_config.json
// with PEFT's semantics, the tensor keys PEFT writes, and the weights file; writing
// adapter_config.json as PEFT's LoraConfig does.
#include "core/adapter/peft_config.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/adapter/peft_match.h"
#include "core/model/safetensors.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

using Json = nlohmann::ordered_json;
constexpr char kKeyPrefix[] = "base_model.model.";

// PEFT's init_lora_weights: "gaussian" as given. A fitted init (loftq, pissa) is written as
// true, as PEFT's LoftQ recipe does for the saved adapter: its factors are already in the
// file, and "loftq"/"pissa" would make PEFT re-fit (and rewrite) the base on load.
Json InitLoraWeightsJson(const LoraConfig& config) {
  return config.init == "gaussian" ? Json("gaussian") : Json(true);
}

// Fields whose presence changes what the adapter computes in ways qlorad does not implement.
struct Unsupported {
  const char* field;
  const char* why;
};
const Unsupported kUnsupported[] = {
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
  if (json.contains("use_dora") && !json["use_dora"].is_null()) {
    if (!json["use_dora"].is_boolean()) return absl::InvalidArgumentError("use_dora must be true or false");
    config.use_dora = json["use_dora"].get<bool>();
  }
  QLORAD_RETURN_IF_ERROR(ReadSelection(json, config));
  QLORAD_RETURN_IF_ERROR(ReadPattern(json, "rank_pattern", config.rank_pattern, config.rank_pattern_order));
  QLORAD_RETURN_IF_ERROR(ReadPattern(json, "alpha_pattern", config.alpha_pattern, config.alpha_pattern_order));
  return config;
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

absl::StatusOr<PeftTensorKey> ParsePeftTensorKey(const std::string& name, bool allow_magnitude) {
  auto refuse = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "' ", why));
  };
  if (absl::StrContains(name, ".lora_embedding_"))
    return refuse("is an embedding adapter (lora_embedding_A/B), which qlorad does not support");
  if (!absl::StartsWith(name, kKeyPrefix))
    return refuse("is not a PEFT LoRA key (hint: expected base_model.model.<module>.lora_A.weight or .lora_B.weight)");
  const std::string rest = name.substr(sizeof(kKeyPrefix) - 1);
  for (const char* suffix : {".lora_magnitude_vector", ".lora_magnitude_vector.weight"}) {
    if (!absl::EndsWith(rest, suffix)) continue;
    if (!allow_magnitude)
      return refuse("is a DoRA magnitude (lora_magnitude_vector), which this reader does not take: adapter_config.json "
                    "does not set use_dora, or the format cannot express DoRA (GGUF LoRA; hint: export a merged model)");
    PeftTensorKey key;
    key.module = rest.substr(0, rest.size() - std::strlen(suffix));
    key.is_magnitude = true;
    return key;
  }
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

std::string PeftTensorName(const std::string& module, bool is_a) {
  return absl::StrCat(kKeyPrefix, module, is_a ? ".lora_A.weight" : ".lora_B.weight");
}

std::string PeftMagnitudeName(const std::string& module) {
  return absl::StrCat(kKeyPrefix, module, ".lora_magnitude_vector");
}

absl::Status WritePeftConfig(const std::string& dir, const LoraConfig& config, const std::string& base_model) {
  Json rank_pattern = Json::object(), alpha_pattern = Json::object();
  for (const std::string& k : config.RankPatternKeys()) rank_pattern[k] = config.rank_pattern.at(k);
  for (const std::string& k : config.AlphaPatternKeys()) alpha_pattern[k] = config.alpha_pattern.at(k);
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
               {"use_dora", config.use_dora}, {"modules_to_save", nullptr}, {"fan_in_fan_out", false}, {"inference_mode", true},
               {"init_lora_weights", InitLoraWeightsJson(config)}, {"rank_pattern", rank_pattern}, {"alpha_pattern", alpha_pattern},
               {"revision", nullptr}};
  return WriteFileAtomically(dir + "/adapter_config.json", json.dump(2) + "\n");
}

}  // namespace qlorad
