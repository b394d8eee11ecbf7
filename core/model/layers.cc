#include "core/model/layers.h"

#include <cmath>

#include <ATen/core/grad_mode.h>

#include "core/model/rope.h"
#include "kernels/decode_ops.h"

namespace qlorad {
namespace {

// Plain causal attention (no explicit mask, not packed) in fp32 on the CPU outside autograd and
// outside training takes the kernel that never forms the tokens × keys score matrix
// (kernels/decode_ops.h). Training keeps one path so that a checkpointed layer's
// no-grad forward and its recomputation agree bit for bit.
bool UseCausalKernel(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionContext& ctx,
                     bool training) {
  if (training) return false;
  const bool autograd = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  return !ctx.mask.defined() && !ctx.segments.defined() && !autograd && q.device().is_cpu() && q.scalar_type() == at::kFloat &&
         k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat;
}

// q [B, H, T, D], k/v [B, Hkv, S, D] -> [B, T, H·D].
at::Tensor CausalAttentionCpu(at::Tensor q, at::Tensor k, at::Tensor v) {
  const int64_t batch = q.size(0), heads = q.size(1), tokens = q.size(2), d = q.size(3);
  q = q.contiguous();
  auto rows_contiguous = [d](const at::Tensor& t) { return t.stride(3) == 1 && t.stride(2) == d; };
  if (!rows_contiguous(k) || !rows_contiguous(v) || k.strides() != v.strides()) {
    k = k.contiguous();
    v = v.contiguous();
  }
  at::Tensor out = at::empty({batch, tokens, heads, d}, q.options());
  kernels::CausalAttentionArgs args;
  args.q = q.data_ptr<float>();
  args.q_batch_stride = q.stride(0), args.q_head_stride = q.stride(1), args.q_token_stride = q.stride(2);
  args.k = k.data_ptr<float>();
  args.v = v.data_ptr<float>();
  args.kv_batch_stride = k.stride(0), args.kv_head_stride = k.stride(1), args.kv_token_stride = k.stride(2);
  args.out = out.data_ptr<float>();
  args.out_batch_stride = out.stride(0), args.out_token_stride = out.stride(1), args.out_head_stride = out.stride(2);
  args.batch = batch, args.heads = heads, args.kv_heads = k.size(1), args.tokens = tokens;
  args.past = k.size(2) - tokens, args.d = d;
  args.scale = 1.0f / std::sqrt(static_cast<float>(d));
  kernels::CausalAttention(args);
  return out.view({batch, tokens, heads * d});
}

}  // namespace

RMSNormImpl::RMSNormImpl(at::Tensor weight, double eps) : eps_(eps) {
  weight_ = register_buffer("weight", std::move(weight));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  at::Tensor h = x.to(at::kFloat);
  h = h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight_ * h.to(x.scalar_type());
}

AttentionImpl::AttentionImpl(const ModelConfig& config, Projections projections)
    : proj_(std::move(projections)),
      heads_(config.num_attention_heads),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim) {
  register_module("q_proj", proj_.q);
  register_module("k_proj", proj_.k);
  register_module("v_proj", proj_.v);
  register_module("o_proj", proj_.o);
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const AttentionContext& ctx) {
  const int64_t batch = x.size(0), tokens = x.size(1);
  at::Tensor q = proj_.q->forward(x).view({batch, tokens, heads_, head_dim_}).transpose(1, 2);
  at::Tensor k = proj_.k->forward(x).view({batch, tokens, kv_heads_, head_dim_}).transpose(1, 2);
  at::Tensor v = proj_.v->forward(x).view({batch, tokens, kv_heads_, head_dim_}).transpose(1, 2);
  q = RotaryEmbedding::Apply(q, ctx.cos, ctx.sin);
  k = RotaryEmbedding::Apply(k, ctx.cos, ctx.sin);
  if (ctx.cache != nullptr) std::tie(k, v) = ctx.cache->Append(ctx.layer_index, k, v);
  if (UseCausalKernel(q, k, v, ctx, is_training())) return proj_.o->forward(CausalAttentionCpu(q, k, v));
  if (ctx.segments.defined()) return proj_.o->forward(SegmentAttention(q, k, v, ctx.segments));
  return proj_.o->forward(MaskedAttention(q, k, v, ctx.mask));
}

at::Tensor AttentionImpl::MaskedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          at::Tensor mask) const {
  const int64_t batch = q.size(0), tokens = q.size(2), keys = k.size(2), groups = heads_ / kv_heads_;
  // Query heads grouped over their shared kv head: [B, Hkv, G, T, D] x [B, Hkv, 1, D, S].
  at::Tensor qg = q.reshape({batch, kv_heads_, groups, tokens, head_dim_});
  at::Tensor scores = at::matmul(qg, k.unsqueeze(2).transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim_));
  if (!mask.defined()) mask = at::ones({tokens, keys}, q.options().dtype(at::kBool)).tril(keys - tokens);
  scores = scores.masked_fill(mask.view({mask.dim() == 4 ? mask.size(0) : 1, 1, 1, tokens, keys}).logical_not(),
                              -std::numeric_limits<float>::infinity());
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(v.scalar_type());
  at::Tensor out = at::matmul(probs, v.unsqueeze(2));  // [B, Hkv, G, T, D]
  return out.reshape({batch, heads_, tokens, head_dim_}).transpose(1, 2).reshape({batch, tokens, heads_ * head_dim_});
}

at::Tensor AttentionImpl::SegmentAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const PackedSegments& segments) const {
  const int64_t batch = q.size(0), tokens = q.size(2);
  // [B, H, T, D] as [B·T, H, D] rows, gathered per group into [n, H, L, D].
  auto token_rows = [&](const at::Tensor& t) { return t.transpose(1, 2).reshape({batch * tokens, t.size(1), head_dim_}); };
  const at::Tensor q_rows = token_rows(q), k_rows = token_rows(k), v_rows = token_rows(v);
  std::vector<at::Tensor> outputs;
  for (const PackedSegments::Group& group : segments.groups) {
    const int64_t n = group.gather.size(0), longest = group.gather.size(1);
    const at::Tensor index = group.gather.flatten();
    auto per_example = [&](const at::Tensor& rows) {
      return rows.index_select(0, index).view({n, longest, rows.size(1), head_dim_}).transpose(1, 2);
    };
    outputs.push_back(MaskedAttention(per_example(q_rows), per_example(k_rows), per_example(v_rows), group.attend)
                          .reshape({n * longest, heads_ * head_dim_}));
  }
  const at::Tensor all = outputs.size() == 1 ? outputs[0] : at::cat(outputs, 0);
  return all.index_select(0, segments.scatter).view({batch, tokens, heads_ * head_dim_});
}

PackedSegments PackedSegments::To(const c10::Device& device) const {
  PackedSegments out;
  for (const Group& group : groups) out.groups.push_back({group.gather.to(device), group.attend.to(device)});
  out.scatter = scatter.to(device);
  return out;
}

MlpImpl::MlpImpl(Projections projections) : proj_(std::move(projections)) {
  register_module("gate_proj", proj_.gate);
  register_module("up_proj", proj_.up);
  register_module("down_proj", proj_.down);
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  return proj_.down->forward(at::silu(proj_.gate->forward(x)) * proj_.up->forward(x));
}

DecoderLayerImpl::DecoderLayerImpl(RMSNorm input_norm, Attention attention, RMSNorm post_attention_norm, Mlp mlp)
    : input_norm_(register_module("input_layernorm", std::move(input_norm))),
      attention_(register_module("self_attn", std::move(attention))),
      post_attention_norm_(register_module("post_attention_layernorm", std::move(post_attention_norm))),
      mlp_(register_module("mlp", std::move(mlp))) {}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const AttentionContext& context) {
  at::Tensor h = x + attention_->forward(input_norm_->forward(x), context);
  return h + mlp_->forward(post_attention_norm_->forward(h));
}

}  // namespace qlorad
