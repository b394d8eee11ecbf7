#include "core/model/llama.h"

#include <ATen/core/grad_mode.h>

#include "core/model/checkpointed_layer.h"

#include <string>

namespace qlorad {

LlamaModelImpl::LlamaModelImpl(ModelConfig config, at::Tensor embed_tokens, std::vector<DecoderLayer> layers,
                               RMSNorm norm, std::shared_ptr<LinearLayer> lm_head, const c10::Device& device)
    : config_(std::move(config)),
      embed_tokens_(register_buffer("embed_tokens", std::move(embed_tokens))),
      layers_(std::move(layers)),
      norm_(register_module("norm", std::move(norm))),
      lm_head_(register_module("lm_head", std::move(lm_head))),
      rope_(config_, device) {
  for (size_t i = 0; i < layers_.size(); ++i) register_module("layers_" + std::to_string(i), layers_[i]);
}

std::unique_ptr<KvCache> LlamaModelImpl::NewCache(int64_t batch, int64_t capacity) const {
  return std::make_unique<KvCache>(config_, batch, capacity, embed_tokens_.options());
}

AttentionContext LlamaModelImpl::MakeContext(const ForwardInput& input, int64_t past) const {
  const int64_t batch = input.tokens.size(0), tokens = input.tokens.size(1), keys = past + tokens;
  at::Tensor positions = input.positions;
  if (!positions.defined())
    positions = at::arange(past, keys, input.tokens.options().dtype(at::kLong)).unsqueeze(0).expand({batch, tokens});
  AttentionContext ctx;
  std::tie(ctx.cos, ctx.sin) = rope_.CosSin(positions.to(device()), dtype());
  ctx.cache = input.cache;
  if (input.segments.defined()) {
    TORCH_CHECK(input.cache == nullptr, "packed segments are for training and scoring (no KV cache)");
    ctx.segments = input.segments.To(device());
  } else if (input.attend.defined()) {
    ctx.mask = input.attend.to(device());
  } else if (input.attention_mask.defined()) {
    auto bool_options = at::TensorOptions().dtype(at::kBool).device(device());
    at::Tensor causal = at::ones({tokens, keys}, bool_options).tril(past);
    at::Tensor key_ok = input.attention_mask.to(device()).ne(0).view({batch, 1, 1, keys});
    at::Tensor self = at::eye(tokens, keys, bool_options).roll(past, 1);  // never an all-masked row
    ctx.mask = (causal.view({1, 1, tokens, keys}) & key_ok) | self.view({1, 1, tokens, keys});
  }
  return ctx;
}

at::Tensor LlamaModelImpl::Hidden(const ForwardInput& input) {
  const int64_t past = input.cache != nullptr ? input.cache->length() : 0;
  // Callers refuse longer work up front with a Status (generate, serving, training); this
  // catches the rest (logits, scoring) instead of silently computing full attention.
  // With explicit positions (paged serving) the engine has checked the request.
  if (!input.positions.defined() && past + input.tokens.size(1) > config_.ContextLimit() &&
      !config_.ContextLimitReason().empty())
    TORCH_CHECK(false, "a sequence of ", past + input.tokens.size(1), " positions exceeds the ",
                config_.ContextLimitReason(), " (hint: at most ", config_.ContextLimit(), " tokens)");
  AttentionContext ctx = MakeContext(input, past);
  at::Tensor h = at::embedding(embed_tokens_, input.tokens.to(device()));
  const bool checkpoint = gradient_checkpointing_ && is_training() && at::GradMode::is_enabled() && input.cache == nullptr;
  for (size_t i = 0; i < layers_.size(); ++i) {
    ctx.layer_index = static_cast<int64_t>(i);
    h = checkpoint ? CheckpointedLayerForward(layers_[i], h, ctx) : layers_[i]->forward(h, ctx);
  }
  if (input.cache != nullptr) input.cache->Advance(input.tokens.size(1));
  return norm_->forward(h);
}

at::Tensor LlamaModelImpl::forward(const ForwardInput& input) { return lm_head_->forward(Hidden(input)); }

}  // namespace qlorad
