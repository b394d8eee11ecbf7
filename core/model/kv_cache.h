// Contiguous per-layer key/value cache for incremental decoding of a batch of
// sequences that advance together. Capacity is fixed at creation (no
// reallocation while decoding). The paged, per-request cache of the serving
// engine is a separate structure.
#ifndef QLORAD_CORE_MODEL_KV_CACHE_H_
#define QLORAD_CORE_MODEL_KV_CACHE_H_

#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "core/model/config.h"

namespace qlorad {

class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, const at::TensorOptions& options);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  // Stores k, v [B, Hkv, T, D] of `layer` at positions [length, length + T) and
  // returns views of all cached keys/values [B, Hkv, length + T, D].
  // The new length becomes visible only after Advance(T).
  std::pair<at::Tensor, at::Tensor> Append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  // Commits T new positions (called once per forward, after all layers appended).
  void Advance(int64_t tokens) { length_ += tokens; }
  void Reset() { length_ = 0; }

 private:
  std::vector<at::Tensor> keys_;    // per layer [B, Hkv, capacity, D]
  std::vector<at::Tensor> values_;
  int64_t capacity_;
  int64_t length_ = 0;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_KV_CACHE_H_
