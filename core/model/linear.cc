#include "core/model/linear.h"

namespace qlorad {

DenseLinear::DenseLinear(at::Tensor weight, std::optional<at::Tensor> bias) {
  TORCH_CHECK(weight.dim() == 2, "DenseLinear weight must be 2-D, got ", weight.sizes());
  weight_ = register_buffer("weight", std::move(weight));
  if (bias && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight_.size(0), "DenseLinear bias must be [", weight_.size(0), "]");
    bias_ = register_buffer("bias", std::move(*bias));
  }
}

at::Tensor DenseLinear::forward(const at::Tensor& x) {
  return bias_.defined() ? at::linear(x, weight_, bias_) : at::linear(x, weight_);
}

std::optional<StreamableWeight> DenseLinear::Streamable() const {
  auto fp32_cpu = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
  };
  if (!fp32_cpu(weight_) || (bias_.defined() && !fp32_cpu(bias_))) return std::nullopt;
  StreamableWeight s;
  s.dense = kernels::WeightMatrix{kernels::WeightFormat::kF32, weight_.data_ptr<float>(), in_features(), in_features(),
                                  nullptr};
  s.bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
  return s;
}

}  // namespace qlorad
