// The Llama-family causal decoder (Llama 1/2/3.x, Mistral, Qwen2): token
// embeddings, N decoder layers, final RMSNorm, lm_head (tied or not).
// Built by the loader (loader.h) from checkpoint tensors; never mutates them.
#ifndef QLORAD_CORE_MODEL_LLAMA_H_
#define QLORAD_CORE_MODEL_LLAMA_H_

#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "core/model/config.h"
#include "core/model/kv_cache.h"
#include "core/model/layers.h"
#include "core/model/rope.h"

namespace qlorad {

struct ForwardInput {
  at::Tensor tokens;          // [B, T] int64
  at::Tensor positions;       // [B, T] int64; default: cache length + arange(T)
  at::Tensor attention_mask;  // optional [B, S] (S = cache length + T), nonzero = real token
  KvStore* cache = nullptr;   // optional: read past keys, append new ones
  // Optional explicit mask, bool [B, 1, T, S], true = may attend; overrides the causal
  // mask built from attention_mask (rows of a batch with different pasts: paged serving).
  at::Tensor attend = {};
  // Optional: padding-free packed examples (layers.h), with `positions` restarting per
  // example; overrides the masks. Training and scoring only (no cache).
  PackedSegments segments = {};
};

class LlamaModelImpl : public torch::nn::Module {
 public:
  LlamaModelImpl(ModelConfig config, at::Tensor embed_tokens, std::vector<DecoderLayer> layers, RMSNorm norm,
                 std::shared_ptr<LinearLayer> lm_head, const c10::Device& device);

  // Logits [B, T, vocab] in the compute dtype.
  at::Tensor forward(const ForwardInput& input);
  // Final hidden states [B, T, hidden] (after the last norm), before lm_head.
  at::Tensor Hidden(const ForwardInput& input);

  // Recompute each decoder layer's forward during backward instead of keeping its
  // activations (checkpointed_layer.h); only while training with autograd on.
  void set_gradient_checkpointing(bool enabled) { gradient_checkpointing_ = enabled; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

  const ModelConfig& config() const { return config_; }
  c10::Device device() const { return embed_tokens_.device(); }
  c10::ScalarType dtype() const { return embed_tokens_.scalar_type(); }
  const at::Tensor& embed_tokens() const { return embed_tokens_; }
  std::vector<DecoderLayer>& layers() { return layers_; }
  LinearLayer& lm_head() { return *lm_head_; }
  RMSNorm& norm() { return norm_; }
  const RotaryEmbedding& rope() const { return rope_; }
  // A cache for `batch` sequences of up to `capacity` positions on this model's device.
  std::unique_ptr<KvCache> NewCache(int64_t batch, int64_t capacity) const;

 private:
  AttentionContext MakeContext(const ForwardInput& input, int64_t past) const;

  ModelConfig config_;
  at::Tensor embed_tokens_;
  std::vector<DecoderLayer> layers_;
  RMSNorm norm_;
  std::shared_ptr<LinearLayer> lm_head_;
  RotaryEmbedding rope_;
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(LlamaModel);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_LLAMA_H_
