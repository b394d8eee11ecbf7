// The linear layers of the decoder, behind one interface so the base can be
// dense (fp32/bf16), NF4-quantized, or wrapped by LoRA without the decoder
// knowing. Base weights are never mutated through this interface.
#ifndef QLORAD_CORE_MODEL_LINEAR_H_
#define QLORAD_CORE_MODEL_LINEAR_H_

#include <memory>
#include <optional>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace qlorad {

class LinearLayer : public torch::nn::Module {
 public:
  // x [..., in_features] -> [..., out_features], in x's dtype.
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
};

// y = x·Wᵀ (+ b). The weight is a frozen buffer (no gradient).
class DenseLinear : public LinearLayer {
 public:
  // weight [out, in]; bias [out] or undefined.
  DenseLinear(at::Tensor weight, std::optional<at::Tensor> bias);

  at::Tensor forward(const at::Tensor& x) override;
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
