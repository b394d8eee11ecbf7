// Building blocks of the Llama-family decoder (libtorch modules).
#ifndef QLORAD_CORE_MODEL_LAYERS_H_
#define QLORAD_CORE_MODEL_LAYERS_H_

#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "core/model/config.h"
#include "core/model/kv_cache.h"
#include "core/model/linear.h"

namespace qlorad {

// x·rsqrt(mean(x²) + eps) computed in fp32, cast back, then × weight.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(at::Tensor weight, double eps);
  at::Tensor forward(const at::Tensor& x);
  const at::Tensor& weight() const { return weight_; }
  double eps() const { return eps_; }

 private:
  at::Tensor weight_;
  double eps_;
};
TORCH_MODULE(RMSNorm);

// Padding-free packed sequences: several examples laid end to end in the [B, T] tokens,
// each attending only to its own earlier tokens. Attention runs per example: the tokens
// are gathered into groups of examples of similar length ([n, L] each, L = the group's
// longest), attended with the group's mask, and scattered back, so its cost is about
// Σ length² rather than B·T². Undefined (no groups) when not packed.
struct PackedSegments {
  struct Group {
    at::Tensor gather;  // int64 [n, L]: each example's tokens as flat indices into B·T (padding: any valid index)
    at::Tensor attend;  // bool [n, 1, L, L]: causal over the example's real tokens; padding slots also see themselves
  };
  std::vector<Group> groups;
  at::Tensor scatter;  // int64 [B·T]: each token's row in the groups' [n·L] outputs, concatenated in order
  bool defined() const { return scatter.defined(); }
  PackedSegments To(const c10::Device& device) const;
};

// Per-forward inputs shared by every layer.
struct AttentionContext {
  at::Tensor cos, sin;   // [B, 1, T, D]
  at::Tensor mask;       // bool [B or 1, 1, T, S]: true = may attend; undefined = plain causal over S = T
  PackedSegments segments;  // overrides `mask` when defined (training only: no cache)
  KvStore* cache = nullptr;
  int64_t layer_index = 0;
};

// Grouped-query self-attention with RoPE; optional q/k/v (and o) biases.
class AttentionImpl : public torch::nn::Module {
 public:
  struct Projections {
    std::shared_ptr<LinearLayer> q, k, v, o;
  };
  AttentionImpl(const ModelConfig& config, Projections projections);
  at::Tensor forward(const at::Tensor& x, const AttentionContext& context);
  const Projections& projections() const { return proj_; }

 private:
  // q [B, H, T, D], k/v [B, Hkv, S, D], mask as AttentionContext::mask -> [B, T, H·D].
  at::Tensor MaskedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor mask) const;
  // As MaskedAttention over S = T, each example of `segments` attending only to itself.
  at::Tensor SegmentAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const PackedSegments& segments) const;

  Projections proj_;
  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

// down(silu(gate(x)) * up(x)).
class MlpImpl : public torch::nn::Module {
 public:
  struct Projections {
    std::shared_ptr<LinearLayer> gate, up, down;
  };
  explicit MlpImpl(Projections projections);
  at::Tensor forward(const at::Tensor& x);
  const Projections& projections() const { return proj_; }

 private:
  Projections proj_;
};
TORCH_MODULE(Mlp);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(RMSNorm input_norm, Attention attention, RMSNorm post_attention_norm, Mlp mlp);
  at::Tensor forward(const at::Tensor& x, const AttentionContext& context);
  Attention& attention() { return attention_; }
  Mlp& mlp() { return mlp_; }
  RMSNorm& input_norm() { return input_norm_; }
  RMSNorm& post_attention_norm() { return post_attention_norm_; }

 private:
  RMSNorm input_norm_;
  Attention attention_;
  RMSNorm post_attention_norm_;
  Mlp mlp_;
};
TORCH_MODULE(DecoderLayer);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_LAYERS_H_
