#include "core/model/rope.h"

#include <cmath>
#include <vector>

namespace qlorad {
namespace {

// llama3 scaling: long wavelengths divided by factor, short kept, smooth blend between.
float Llama3Scale(double freq, const RopeScaling& s) {
  const double kPi = 3.14159265358979323846;
  double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  double wavelen = 2 * kPi / freq;
  if (wavelen < high_wavelen) return static_cast<float>(freq);
  if (wavelen > low_wavelen) return static_cast<float>(freq / s.factor);
  double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                  (s.high_freq_factor - s.low_freq_factor);
  return static_cast<float>((1 - smooth) * freq / s.factor + smooth * freq);
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(const ModelConfig& config, const c10::Device& device) {
  const int64_t dim = config.head_dim;
  std::vector<float> freqs(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    // As HF: 1 / theta^(arange(0, d, 2).float() / d), evaluated in fp32.
    float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    float freq = 1.0f / std::pow(static_cast<float>(config.rope_theta), exponent);
    switch (config.rope_scaling.type) {
      case RopeScalingType::kLinear: freq = freq / static_cast<float>(config.rope_scaling.factor); break;
      case RopeScalingType::kLlama3: freq = Llama3Scale(freq, config.rope_scaling); break;
      case RopeScalingType::kNone: break;
    }
    freqs[i] = freq;
  }
  inv_freq_ = at::tensor(freqs, at::TensorOptions().dtype(at::kFloat)).to(device);
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::CosSin(const at::Tensor& positions, c10::ScalarType dtype) const {
  at::Tensor angles = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [B, T, D/2]
  at::Tensor emb = at::cat({angles, angles}, -1).unsqueeze(1);             // [B, 1, T, D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor RotaryEmbedding::Apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

}  // namespace qlorad
