// llama.cpp's view of a Hugging Face Llama/Mistral/Qwen2 checkpoint: architecture
// name, hyperparameter keys, tensor names, the q/k row permutation and the
// llama3 rope factors, as llama.cpp's convert_hf_to_gguf.py writes them.
//
//   model.embed_tokens.weight                      -> token_embd.weight
//   model.layers.N.input_layernorm.weight          -> blk.N.attn_norm.weight
//   model.layers.N.self_attn.{q,k,v,o}_proj.*      -> blk.N.attn_{q,k,v,output}.*
//   model.layers.N.post_attention_layernorm.weight -> blk.N.ffn_norm.weight
//   model.layers.N.mlp.{gate,up,down}_proj.weight  -> blk.N.ffn_{gate,up,down}.weight
//   model.norm.weight                              -> output_norm.weight
//   lm_head.weight                                 -> output.weight (absent when tied)
// Architecture "llama" (model types llama, mistral) rotates interleaved pairs, so q
// and k rows (weights and biases) are permuted per head: reshape(n_head, 2, d/2, ...)
// .swapaxes(1, 2); k uses the kv head count. "qwen2" uses NEOX rope: no permutation.
#ifndef QLORAD_CORE_EXPORT_GGUF_LLAMA_H_
#define QLORAD_CORE_EXPORT_GGUF_LLAMA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "core/export/gguf_writer.h"
#include "core/model/config.h"

namespace qlorad::gguf {

// "llama" for model types llama and mistral, "qwen2" for qwen2.
absl::StatusOr<std::string> GgufArchitecture(const ModelConfig& config);

// general.architecture, general.name, general.file_type and the {arch}.* keys:
// context_length, embedding_length, block_count, feed_forward_length,
// rope.dimension_count, attention.head_count(_kv), attention.layer_norm_rms_epsilon,
// rope.freq_base, vocab_size, attention.key_length/value_length, and for linear rope
// scaling rope.scaling.type/factor.
absl::Status SetModelMetadata(const ModelConfig& config, const std::string& name, uint32_t file_type,
                              GgufWriter& writer);

// The Hugging Face tensors a GGUF export carries, in export order.
std::vector<std::string> HfTensorNames(const ModelConfig& config);

// The GGUF name of a Hugging Face tensor (table above); INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> GgufTensorName(const std::string& hf_name);

// For a tensor or module whose output rows llama.cpp permutes under `config`
// (q_proj/k_proj weights and biases, and the lora_B of those modules), the head
// count to permute with (k: the kv heads); nullopt when none applies.
std::optional<int64_t> PermuteHeads(const ModelConfig& config, const std::string& hf_name);

// llama.cpp's row permutation of a [rows, ...] tensor with `heads` heads.
at::Tensor PermuteRows(const at::Tensor& tensor, int64_t heads);

// rope_freqs.weight for llama3 rope scaling: one divisor per frequency, [head_dim / 2].
std::vector<float> Llama3RopeFactors(const ModelConfig& config);

}  // namespace qlorad::gguf

#endif  // QLORAD_CORE_EXPORT_GGUF_LLAMA_H_
