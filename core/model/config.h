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
  // Sliding-window attention as config.json declares it (transformers' semantics).
  // Mistral: sliding_window on every layer; absent = 4096 (MistralConfig's default), null = none.
  // Qwen2: only with use_sliding_window, on layers >= max_window_layers (or those layer_types
  // names "sliding_attention"). qlorad attends to the full context, which equals windowed
  // attention up to `window` positions, so longer sequences are refused (ContextLimit).
  std::optional<int64_t> sliding_window;  // as written (qwen2: even when use_sliding_window is false)
  bool use_sliding_window = false;        // qwen2 only
  int64_t max_window_layers = 28;         // qwen2 only
  std::vector<std::string> layer_types;   // optional per-layer "full_attention" / "sliding_attention"

  int64_t QueryGroups() const { return num_attention_heads / num_key_value_heads; }
  // The window if at least one layer attends through one, else nullopt.
  std::optional<int64_t> EffectiveSlidingWindow() const;
  // The longest sequence (prompt + generated tokens) qlorad computes as the model
  // defines it: max_position_embeddings, or the sliding window when that is smaller.
  int64_t ContextLimit() const;
  // "" when ContextLimit() is max_position_embeddings; else why it is smaller, for errors:
  // "sliding_window 4096 of config.json (qlorad does not implement windowed attention ...)".
  std::string ContextLimitReason() const;
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
