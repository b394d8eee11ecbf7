#include "core/model/config.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

using Json = nlohmann::json;

struct KnownArchitecture {
  const char* model_type;
  const char* architecture;
};
constexpr std::array<KnownArchitecture, 3> kArchitectures = {{
    {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}}};

class FieldReader {
 public:
  FieldReader(const Json& json, const std::string& source) : json_(json), source_(source) {}

  absl::Status Error(const std::string& field, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": field '", field, "' ", what));
  }
  absl::StatusOr<int64_t> Int(const std::string& field, std::optional<int64_t> fallback) const {
    auto it = json_.find(field);
    if (it == json_.end() || it->is_null()) {
      if (fallback) return *fallback;
      return Error(field, "is missing (required)");
    }
    if (!it->is_number_integer() || it->get<int64_t>() < 0) return Error(field, "must be a non-negative integer");
    return it->get<int64_t>();
  }
  absl::StatusOr<double> Number(const std::string& field, double fallback) const {
    auto it = json_.find(field);
    if (it == json_.end() || it->is_null()) return fallback;
    if (!it->is_number()) return Error(field, "must be a number");
    return it->get<double>();
  }
  absl::StatusOr<std::string> String(const std::string& field, const std::string& fallback) const {
    auto it = json_.find(field);
    if (it == json_.end() || it->is_null()) return fallback;
    if (!it->is_string()) return Error(field, "must be a string");
    return it->get<std::string>();
  }
  absl::StatusOr<bool> Bool(const std::string& field, bool fallback) const {
    auto it = json_.find(field);
    if (it == json_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return Error(field, "must be true or false");
    return it->get<bool>();
  }

 private:
  const Json& json_;
  const std::string& source_;
};

absl::StatusOr<RopeScaling> ParseRopeScaling(const Json& json, const std::string& source) {
  RopeScaling scaling;
  auto it = json.find("rope_scaling");
  if (it == json.end() || it->is_null()) return scaling;
  if (!it->is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": field 'rope_scaling' must be an object"));
  FieldReader reader(*it, source);
  QLORAD_ASSIGN_OR_RETURN(std::string legacy_type, reader.String("type", ""));
  QLORAD_ASSIGN_OR_RETURN(std::string type, reader.String("rope_type", legacy_type));
  if (type == "linear") {
    scaling.type = RopeScalingType::kLinear;
  } else if (type == "llama3") {
    scaling.type = RopeScalingType::kLlama3;
    QLORAD_ASSIGN_OR_RETURN(scaling.low_freq_factor, reader.Number("low_freq_factor", 1.0));
    QLORAD_ASSIGN_OR_RETURN(scaling.high_freq_factor, reader.Number("high_freq_factor", 4.0));
    QLORAD_ASSIGN_OR_RETURN(scaling.original_max_position_embeddings,
                            reader.Int("original_max_position_embeddings", int64_t{8192}));
  } else if (type == "default") {
    return scaling;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(source, ": rope_scaling type '", type,
                                                   "' is not supported (supported: linear, llama3)"));
  }
  QLORAD_ASSIGN_OR_RETURN(scaling.factor, reader.Number("factor", 1.0));
  if (scaling.factor <= 0) return reader.Error("rope_scaling.factor", "must be positive");
  return scaling;
}

absl::Status IdentifyArchitecture(const Json& json, const std::string& source, ModelConfig& config) {
  QLORAD_ASSIGN_OR_RETURN(config.model_type, FieldReader(json, source).String("model_type", ""));
  if (auto it = json.find("architectures"); it != json.end() && it->is_array() && !it->empty() && (*it)[0].is_string())
    config.architecture = (*it)[0].get<std::string>();
  for (const auto& known : kArchitectures) {
    if (config.model_type == known.model_type || config.architecture == known.architecture) {
      config.model_type = known.model_type;
      if (config.architecture.empty()) config.architecture = known.architecture;
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      source, ": unsupported architecture (model_type '", config.model_type, "', architectures ['", config.architecture,
      "']); supported model types: ", SupportedModelTypes()));
}

absl::Status ParseTokenIds(const Json& json, ModelConfig& config) {
  if (auto it = json.find("bos_token_id"); it != json.end() && it->is_number_integer()) config.bos_token_id = it->get<int64_t>();
  if (auto it = json.find("eos_token_id"); it != json.end()) {
    if (it->is_number_integer()) config.eos_token_ids.push_back(it->get<int64_t>());
    if (it->is_array())
      for (const auto& id : *it)
        if (id.is_number_integer()) config.eos_token_ids.push_back(id.get<int64_t>());
  }
  return absl::OkStatus();
}

// transformers: MistralConfig(sliding_window=4096), Qwen2Config(use_sliding_window=False,
// sliding_window=4096, max_window_layers=28, layer_types=None). Llama has no window.
absl::Status ParseSlidingWindow(const Json& json, const FieldReader& reader, ModelConfig& c) {
  if (c.model_type == "llama") return absl::OkStatus();
  auto it = json.find("sliding_window");
  if (it == json.end()) {
    c.sliding_window = 4096;
  } else if (!it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
      return reader.Error("sliding_window", "must be a positive integer or null (no window)");
    c.sliding_window = it->get<int64_t>();
  }
  if (c.model_type != "qwen2") return absl::OkStatus();
  QLORAD_ASSIGN_OR_RETURN(c.use_sliding_window, reader.Bool("use_sliding_window", false));
  QLORAD_ASSIGN_OR_RETURN(c.max_window_layers, reader.Int("max_window_layers", int64_t{28}));
  if (auto types = json.find("layer_types"); types != json.end() && !types->is_null()) {
    if (!types->is_array()) return reader.Error("layer_types", "must be a list of \"full_attention\" / \"sliding_attention\"");
    for (const auto& type : *types) {
      if (!type.is_string() || (type != "full_attention" && type != "sliding_attention"))
        return reader.Error("layer_types", "entries must be \"full_attention\" or \"sliding_attention\"");
      c.layer_types.push_back(type.get<std::string>());
    }
  }
  return absl::OkStatus();
}

absl::Status CheckConsistency(const ModelConfig& c, const FieldReader& reader) {
  if (c.hidden_size == 0) return reader.Error("hidden_size", "must be positive");
  if (c.num_attention_heads == 0) return reader.Error("num_attention_heads", "must be positive");
  if (c.num_hidden_layers == 0) return reader.Error("num_hidden_layers", "must be positive");
  if (c.vocab_size == 0) return reader.Error("vocab_size", "must be positive");
  if (c.num_key_value_heads == 0 || c.num_attention_heads % c.num_key_value_heads != 0)
    return reader.Error("num_key_value_heads", absl::StrCat("(", c.num_key_value_heads, ") must divide num_attention_heads (",
                                                            c.num_attention_heads, ")"));
  if (c.head_dim == 0 || c.head_dim % 2 != 0) return reader.Error("head_dim", "must be positive and even (RoPE rotates pairs)");
  if (!c.layer_types.empty() && static_cast<int64_t>(c.layer_types.size()) != c.num_hidden_layers)
    return reader.Error("layer_types", absl::StrCat("has ", c.layer_types.size(), " entries for ", c.num_hidden_layers, " layers"));
  return absl::OkStatus();
}

}  // namespace

int64_t ModelConfig::ParameterCount() const {
  int64_t q = num_attention_heads * head_dim, kv = num_key_value_heads * head_dim;
  int64_t attention = hidden_size * q + 2 * hidden_size * kv + q * hidden_size;
  if (attention_bias) attention += q + 2 * kv;
  int64_t mlp = 3 * hidden_size * intermediate_size;
  int64_t layer = attention + mlp + 2 * hidden_size;
  int64_t embeddings = vocab_size * hidden_size;
  return embeddings * (tie_word_embeddings ? 1 : 2) + num_hidden_layers * layer + hidden_size;
}

std::optional<int64_t> ModelConfig::EffectiveSlidingWindow() const {
  if (!sliding_window) return std::nullopt;
  if (model_type == "mistral") return sliding_window;
  if (model_type != "qwen2" || !use_sliding_window) return std::nullopt;
  if (!layer_types.empty()) {
    for (const std::string& type : layer_types)
      if (type == "sliding_attention") return sliding_window;
    return std::nullopt;
  }
  return max_window_layers < num_hidden_layers ? sliding_window : std::nullopt;
}

int64_t ModelConfig::ContextLimit() const {
  std::optional<int64_t> window = EffectiveSlidingWindow();
  return window ? std::min(*window, max_position_embeddings) : max_position_embeddings;
}

std::string ModelConfig::ContextLimitReason() const {
  std::optional<int64_t> window = EffectiveSlidingWindow();
  if (!window || *window >= max_position_embeddings) return "";
  return absl::StrCat("sliding_window ", *window, " of config.json (qlorad attends to the full context, which equals ",
                      model_type, "'s windowed attention only up to the window, so longer sequences are refused)");
}

std::string SupportedModelTypes() {
  std::string names;
  for (const auto& known : kArchitectures) absl::StrAppend(&names, names.empty() ? "" : ", ", known.model_type);
  return names;
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source) {
  Json json = Json::parse(json_text, nullptr, false);
  if (json.is_discarded() || !json.is_object())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object (hint: is this a config.json?)"));
  ModelConfig c;
  QLORAD_RETURN_IF_ERROR(IdentifyArchitecture(json, source, c));
  FieldReader r(json, source);
  QLORAD_ASSIGN_OR_RETURN(c.hidden_size, r.Int("hidden_size", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(c.intermediate_size, r.Int("intermediate_size", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(c.num_hidden_layers, r.Int("num_hidden_layers", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(c.num_attention_heads, r.Int("num_attention_heads", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(c.num_key_value_heads, r.Int("num_key_value_heads", c.num_attention_heads));
  int64_t default_head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  QLORAD_ASSIGN_OR_RETURN(c.head_dim, r.Int("head_dim", default_head_dim));
  QLORAD_ASSIGN_OR_RETURN(c.max_position_embeddings, r.Int("max_position_embeddings", int64_t{2048}));
  QLORAD_ASSIGN_OR_RETURN(c.rms_norm_eps, r.Number("rms_norm_eps", 1e-6));
  QLORAD_ASSIGN_OR_RETURN(c.rope_theta, r.Number("rope_theta", 10000.0));
  QLORAD_ASSIGN_OR_RETURN(c.tie_word_embeddings, r.Bool("tie_word_embeddings", false));
  QLORAD_ASSIGN_OR_RETURN(c.rope_scaling, ParseRopeScaling(json, source));
  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases and no o_proj bias
  } else {
    QLORAD_ASSIGN_OR_RETURN(c.attention_bias, r.Bool("attention_bias", false));
    c.o_proj_bias = c.attention_bias;
  }
  QLORAD_ASSIGN_OR_RETURN(c.torch_dtype, r.String("torch_dtype", "float32"));
  QLORAD_RETURN_IF_ERROR(ParseTokenIds(json, c));
  QLORAD_RETURN_IF_ERROR(ParseSlidingWindow(json, r, c));
  QLORAD_RETURN_IF_ERROR(CheckConsistency(c, r));
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  std::string path = model_dir + "/config.json";
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path);
}

std::string ModelConfigToJson(const ModelConfig& c) {
  nlohmann::ordered_json json;
  json["architectures"] = {c.architecture};
  json["model_type"] = c.model_type;
  json["hidden_size"] = c.hidden_size;
  json["intermediate_size"] = c.intermediate_size;
  json["num_hidden_layers"] = c.num_hidden_layers;
  json["num_attention_heads"] = c.num_attention_heads;
  json["num_key_value_heads"] = c.num_key_value_heads;
  json["head_dim"] = c.head_dim;
  json["vocab_size"] = c.vocab_size;
  json["max_position_embeddings"] = c.max_position_embeddings;
  json["rms_norm_eps"] = c.rms_norm_eps;
  json["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type == RopeScalingType::kLinear) {
    json["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
  } else if (c.rope_scaling.type == RopeScalingType::kLlama3) {
    json["rope_scaling"] = {{"rope_type", "llama3"},
                            {"factor", c.rope_scaling.factor},
                            {"low_freq_factor", c.rope_scaling.low_freq_factor},
                            {"high_freq_factor", c.rope_scaling.high_freq_factor},
                            {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  json["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.model_type != "qwen2") json["attention_bias"] = c.attention_bias;
  if (c.bos_token_id) json["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) json["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) json["eos_token_id"] = c.eos_token_ids;
  if (c.model_type != "llama") {
    json["sliding_window"] = c.sliding_window ? nlohmann::ordered_json(*c.sliding_window) : nlohmann::ordered_json(nullptr);
  }
  if (c.model_type == "qwen2") {
    json["use_sliding_window"] = c.use_sliding_window;
    json["max_window_layers"] = c.max_window_layers;
    if (!c.layer_types.empty()) json["layer_types"] = c.layer_types;
  }
  json["torch_dtype"] = c.torch_dtype;
  return json.dump(2) + "\n";
}

}  // namespace qlorad
