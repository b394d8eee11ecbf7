// Key/value storage seen by attention during incremental decoding.
//
// KvStore is the contract the decoder uses; KvCache is the contiguous cache for a
// batch of sequences that advance together (capacity fixed at creation, no
// reallocation while decoding). The serving engine's paged cache
// (core/serve/paged_kv_cache.h) implements the same contract over shared blocks.
#ifndef QLORAD_CORE_MODEL_KV_CACHE_H_
#define QLORAD_CORE_MODEL_KV_CACHE_H_

#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "core/model/config.h"

namespace qlorad {

class KvStore {
 public:
  virtual ~KvStore() = default;
  // Positions already cached (shared by every row); the default positions of new tokens start here.
  virtual int64_t length() const = 0;
  // Stores the new k, v [B, Hkv, T, D] of `layer` and returns every key/value the
  // new queries may attend to, [B, Hkv, S, D].
  virtual std::pair<at::Tensor, at::Tensor> Append(int64_t layer, const at::Tensor& k, const at::Tensor& v) = 0;
  // Commits T new positions (called once per forward, after all layers appended).
  virtual void Advance(int64_t tokens) = 0;
};

class KvCache : public KvStore {
 public:
  KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, const at::TensorOptions& options);

  int64_t length() const override { return length_; }
  int64_t capacity() const { return capacity_; }
  // Stores k, v at positions [length, length + T); returns views [B, Hkv, length + T, D].
  // The new length becomes visible only after Advance(T).
  std::pair<at::Tensor, at::Tensor> Append(int64_t layer, const at::Tensor& k, const at::Tensor& v) override;
  void Advance(int64_t tokens) override { length_ += tokens; }
  void Reset() { length_ = 0; }
  // Per-layer storage, contiguous [B, Hkv, capacity, D], for kernels that write the
  // new position in place (fused_decoder.h) before Advance.
  const at::Tensor& keys(int64_t layer) const { return keys_[layer]; }
  const at::Tensor& values(int64_t layer) const { return values_[layer]; }

 private:
  std::vector<at::Tensor> keys_;    // per layer [B, Hkv, capacity, D]
  std::vector<at::Tensor> values_;
  int64_t capacity_;
  int64_t length_ = 0;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_KV_CACHE_H_
