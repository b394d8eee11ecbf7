#include "core/model/kv_cache.h"

namespace qlorad {

KvCache::KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, const at::TensorOptions& options)
    : capacity_(capacity) {
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    keys_.push_back(at::empty({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
    values_.push_back(at::empty({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
  }
}

std::pair<at::Tensor, at::Tensor> KvCache::Append(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  const int64_t tokens = k.size(2);
  TORCH_CHECK(length_ + tokens <= capacity_, "KV cache overflow: ", length_, " + ", tokens, " > capacity ", capacity_);
  keys_[layer].narrow(2, length_, tokens).copy_(k);
  values_[layer].narrow(2, length_, tokens).copy_(v);
  return {keys_[layer].narrow(2, 0, length_ + tokens), values_[layer].narrow(2, 0, length_ + tokens)};
}

}  // namespace qlorad
