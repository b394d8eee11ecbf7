#include "core/export/gguf_llama.h"

#include <ATen/ATen.h>

#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace qlorad::gguf {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Per-layer suffixes: Hugging Face -> GGUF.
constexpr std::pair<const char*, const char*> kLayerTensors[] = {
    {"input_layernorm", "attn_norm"},       {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},         {"self_attn.o_proj", "attn_output"},
    {"post_attention_layernorm", "ffn_norm"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};

}  // namespace

absl::StatusOr<std::string> GgufArchitecture(const ModelConfig& config) {
  if (config.model_type == "llama" || config.model_type == "mistral") return std::string("llama");
  if (config.model_type == "qwen2") return std::string("qwen2");
  return absl::InvalidArgumentError(absl::StrCat("model_type '", config.model_type,
                                                 "' has no GGUF export (supported: llama, mistral, qwen2)"));
}

absl::Status SetModelMetadata(const ModelConfig& c, const std::string& name, uint32_t file_type, GgufWriter& w) {
  auto arch_or = GgufArchitecture(c);
  if (!arch_or.ok()) return arch_or.status();
  const std::string arch = *arch_or;
  auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.SetString("general.architecture", arch);
  w.SetString("general.name", name);
  w.SetUint32("general.file_type", file_type);
  w.SetAlignment(GgufWriter::kDefaultAlignment);
  w.SetUint32(arch + ".context_length", u32(c.max_position_embeddings));
  w.SetUint32(arch + ".embedding_length", u32(c.hidden_size));
  w.SetUint32(arch + ".block_count", u32(c.num_hidden_layers));
  w.SetUint32(arch + ".feed_forward_length", u32(c.intermediate_size));
  w.SetUint32(arch + ".rope.dimension_count", u32(c.head_dim));
  w.SetUint32(arch + ".attention.head_count", u32(c.num_attention_heads));
  w.SetUint32(arch + ".attention.head_count_kv", u32(c.num_key_value_heads));
  w.SetFloat32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.SetFloat32(arch + ".rope.freq_base", static_cast<float>(c.rope_theta));
  w.SetUint32(arch + ".vocab_size", u32(c.vocab_size));
  w.SetUint32(arch + ".attention.key_length", u32(c.head_dim));
  w.SetUint32(arch + ".attention.value_length", u32(c.head_dim));
  if (c.rope_scaling.type == RopeScalingType::kLinear) {
    w.SetString(arch + ".rope.scaling.type", "linear");
    w.SetFloat32(arch + ".rope.scaling.factor", static_cast<float>(c.rope_scaling.factor));
  }
  return absl::OkStatus();
}

std::vector<std::string> HfTensorNames(const ModelConfig& c) {
  std::vector<std::string> names = {"model.embed_tokens.weight"};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string layer = absl::StrCat("model.layers.", i, ".");
    for (const auto& [hf, unused] : kLayerTensors) {
      (void)unused;
      const std::string base = layer + hf;
      names.push_back(base + ".weight");
      const bool qkv = absl::EndsWith(hf, "q_proj") || absl::EndsWith(hf, "k_proj") || absl::EndsWith(hf, "v_proj");
      if ((qkv && c.attention_bias) || (absl::EndsWith(hf, "o_proj") && c.o_proj_bias)) names.push_back(base + ".bias");
    }
  }
  names.push_back("model.norm.weight");
  if (!c.tie_word_embeddings) names.push_back("lm_head.weight");
  return names;
}

absl::StatusOr<std::string> GgufTensorName(const std::string& hf_name) {
  if (hf_name == "model.embed_tokens.weight") return std::string("token_embd.weight");
  if (hf_name == "model.norm.weight") return std::string("output_norm.weight");
  if (hf_name == "lm_head.weight") return std::string("output.weight");
  std::vector<std::string> parts = absl::StrSplit(hf_name, absl::MaxSplits('.', 3));
  int64_t layer = -1;
  if (parts.size() == 4 && parts[0] == "model" && parts[1] == "layers" && absl::SimpleAtoi(parts[2], &layer)) {
    for (const auto& [hf, gguf] : kLayerTensors) {
      for (const char* suffix : {".weight", ".bias"})
        if (parts[3] == absl::StrCat(hf, suffix)) return absl::StrCat("blk.", layer, ".", gguf, suffix);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("tensor '", hf_name,
                                                 "' has no GGUF name (hint: only Llama-family decoder tensors export)"));
}

std::optional<int64_t> PermuteHeads(const ModelConfig& c, const std::string& hf_name) {
  if (c.model_type != "llama" && c.model_type != "mistral") return std::nullopt;
  if (absl::StrContains(hf_name, "self_attn.q_proj")) return c.num_attention_heads;
  if (absl::StrContains(hf_name, "self_attn.k_proj")) return c.num_key_value_heads;
  return std::nullopt;
}

at::Tensor PermuteRows(const at::Tensor& t, int64_t heads) {
  std::vector<int64_t> shape = {heads, 2, t.size(0) / heads / 2};
  for (int64_t d = 1; d < t.dim(); ++d) shape.push_back(t.size(d));
  return t.reshape(shape).transpose(1, 2).reshape(t.sizes()).contiguous();
}

std::vector<float> Llama3RopeFactors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  std::vector<float> factors;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    // The converter computes the frequencies in float32, then the factors in double.
    const float freq = 1.0f / std::pow(static_cast<float>(c.rope_theta), static_cast<float>(i) / static_cast<float>(c.head_dim));
    const double wavelen = 2 * kPi / static_cast<double>(freq);
    double factor;
    if (wavelen < high_wavelen) {
      factor = 1.0;
    } else if (wavelen > low_wavelen) {
      factor = s.factor;
    } else {
      const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      factor = 1.0 / ((1.0 - smooth) / s.factor + smooth);
    }
    factors.push_back(static_cast<float>(factor));
  }
  return factors;
}

}  // namespace qlorad::gguf
