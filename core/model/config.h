// Decoder configuration read from a Hugging Face config.json (Llama 1/2/3/3.1/3.2,
// Mistral, Qwen2). Torch-free.
#ifndef QLORAD_CORE_MODEL_CONFIG_H_
#define QLORAD_CORE_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qlorad {

enum class RopeScalingType { kNone, kLinear, kLlama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3 only
  double high_freq_factor = 4.0;  // llama3 only
  int64_t original_max_position_embeddings = 8192;  // llama3 only
};

struct ModelConfig {
  std::string model_type;    // "llama", "mistral" or "qwen2"
  std::string architecture;  // e.g. "LlamaForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v (and o for Llama's attention_bias) biases; Qwen2: q/k/v
  bool o_proj_bias = false;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";  // as written in the file

  int64_t QueryGroups() const { return num_attention_heads / num_key_value_heads; }
  // Total parameters the checkpoint holds (embeddings, layers, norms, lm_head unless tied).
  int64_t ParameterCount() const;
};

// Parses config.json text. `source` names the file in errors. Unknown
// architectures, missing required fields and inconsistent sizes are
// INVALID_ARGUMENT errors naming the field.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

// Serializes in the Hugging Face field names (what make-model writes).
std::string ModelConfigToJson(const ModelConfig& config);

// "llama, mistral, qwen2".
std::string SupportedModelTypes();

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_CONFIG_H_
