// The linear layers of the decoder, behind one interface so the base can be
// dense (fp32/bf16), NF4-quantized, or wrapped by LoRA without the decoder
// knowing. Base weights are never mutated through this interface.
#ifndef QLORAD_CORE_MODEL_LINEAR_H_
#define QLORAD_CORE_MODEL_LINEAR_H_

#include <memory>
#include <optional>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "kernels/matvec.h"
#include "kernels/quant4bit.h"

namespace qlorad {

// A weight the fused CPU decode step (fused_decoder.h) streams itself instead of calling
// forward: a dense matrix or a 4-bit packed one, in CPU memory that lives as long as the
// layer, whose product with x equals forward(x). Layers that do more than y = x·Wᵀ + b
// (LoRA) have none.
struct StreamableWeight {
  kernels::WeightMatrix dense;                        // dense.data != nullptr: this one
  std::optional<kernels::Packed4bitView> packed4bit;  // otherwise this one
  const float* bias = nullptr;                        // [out] fp32, or nullptr
};

// A plain LoRA layer seen by the fused decode path: y = base(x) + scaling · (x·Aᵀ)·Bᵀ,
// with the base streamable and the factors fp32 row-major in CPU memory that lives as
// long as the layer. It describes the layer's state when asked (adapter enabled, no
// active dropout, not DoRA, these factor values); ask again after changing any of it.
struct StreamableLowRank {
  StreamableWeight base;
  const float* a = nullptr;  // [rank, in]
  const float* b = nullptr;  // [out, rank]
  int64_t rank = 0;
  float scaling = 1.0f;
};

class LinearLayer : public torch::nn::Module {
 public:
  // x [..., in_features] -> [..., out_features], in x's dtype.
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  // The weight for the fused decode path; nullopt = call forward.
  virtual std::optional<StreamableWeight> Streamable() const { return std::nullopt; }
  // For layers without a StreamableWeight: a base and a LoRA update the fused path can
  // stream instead of calling forward; nullopt = call forward.
  virtual std::optional<StreamableLowRank> StreamableAdapter() const { return std::nullopt; }
};

// y = x·Wᵀ (+ b). The weight is a frozen buffer (no gradient).
class DenseLinear : public LinearLayer {
 public:
  // weight [out, in]; bias [out] or undefined.
  DenseLinear(at::Tensor weight, std::optional<at::Tensor> bias);

  at::Tensor forward(const at::Tensor& x) override;
  // fp32 contiguous CPU weight (and fp32 bias, if any) only.
  std::optional<StreamableWeight> Streamable() const override;
  int64_t in_features() const override { return weight_.size(1); }
  int64_t out_features() const override { return weight_.size(0); }
  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& bias() const { return bias_; }

 private:
  at::Tensor weight_;
  at::Tensor bias_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_LINEAR_H_
