// Rotary position embedding, Hugging Face convention (rotate_half over the two
// halves of head_dim), with "linear" and "llama3" frequency scaling.
#ifndef QLORAD_CORE_MODEL_ROPE_H_
#define QLORAD_CORE_MODEL_ROPE_H_

#include <utility>

#include <ATen/ATen.h>

#include "core/model/config.h"

namespace qlorad {

class RotaryEmbedding {
 public:
  RotaryEmbedding(const ModelConfig& config, const c10::Device& device);

  // positions [B, T] int64 -> (cos, sin), each [B, 1, T, head_dim] in `dtype`.
  std::pair<at::Tensor, at::Tensor> CosSin(const at::Tensor& positions, c10::ScalarType dtype) const;

  // x [B, H, T, D] -> x·cos + rotate_half(x)·sin.
  static at::Tensor Apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

  const at::Tensor& inv_freq() const { return inv_freq_; }

 private:
  at::Tensor inv_freq_;  // [head_dim / 2] fp32
};

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_ROPE_H_
