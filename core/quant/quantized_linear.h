// QuantizedLinear: a frozen 4-bit (NF4 by default) linear layer y = x·Wᵀ + b.
//
// The packed weight and its scales are registered as buffers (weight, absmax, quant_map,
// nested_absmax, nested_quant_map, bias), so module.to(device) moves them and
// named_buffers() lists them; nothing is a parameter (no gradient reaches W or b).
// forward works for any leading shape, dtype (fp32/bf16/fp16) and device; gradients flow
// to x through a custom autograd function that re-dequantizes W in backward.
// Small row counts on the CPU use the fused kernel, large ones a tiled dequant + matmul
// (quant4bit_matmul.h).
//
//   ASSIGN_OR_RETURN(QuantizedLinear q, QuantizedLinearImpl::FromWeight(w, bias, {}));
//   at::Tensor y = q(x);
#ifndef QLORAD_CORE_QUANT_QUANTIZED_LINEAR_H_
#define QLORAD_CORE_QUANT_QUANTIZED_LINEAR_H_

#include <optional>
#include <ostream>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "absl/status/statusor.h"
#include "core/quant/quant_state.h"

namespace qlorad {

class QuantizedLinear;

class QuantizedLinearImpl : public torch::nn::Module {
 public:
  // Quantizes a [out, in] weight of any floating dtype (contiguous; any device: the
  // state is placed on the weight's device). bias: [out], kept in its own dtype.
  static absl::StatusOr<QuantizedLinear> FromWeight(const at::Tensor& weight,
                                                    std::optional<at::Tensor> bias,
                                                    const QuantOptions& options = {});
  // Wraps an already-quantized state (e.g. read from a bitsandbytes checkpoint);
  // validates it (2-D shape, sizes, dtypes, code book, one device).
  static absl::StatusOr<QuantizedLinear> FromState(Quant4bitState state,
                                                   std::optional<at::Tensor> bias);

  // Use FromWeight / FromState (they validate); public only for TORCH_MODULE.
  QuantizedLinearImpl(Quant4bitState state, at::Tensor bias);

  // x [..., in] -> [..., out] in x's dtype on x's device.
  at::Tensor forward(const at::Tensor& x);

  // W dequantized to `dtype` ([out, in], on the state's device). A fresh tensor.
  absl::StatusOr<at::Tensor> DequantizedWeight(at::ScalarType dtype = at::kFloat) const;

  int64_t in_features() const { return state_.shape[1]; }
  int64_t out_features() const { return state_.shape[0]; }
  // The packed state (bitsandbytes layout) for checkpoint writers; tensors are shared.
  const Quant4bitState& state() const { return state_; }
  const at::Tensor& bias() const { return bias_; }
  // Bytes of every tensor of the quantized weight (excluding the bias).
  int64_t WeightStorageBytes() const { return state_.StorageBytes(); }

  // Module::to casts every buffer; here a dtype applies to the bias only, since the
  // packed weight and its scales have fixed dtypes (uint8 / fp32) in the 4-bit format.
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, bool non_blocking = false) override;

  void pretty_print(std::ostream& stream) const override;

 private:
  Quant4bitState state_;  // tensors shared with the registered buffers
  at::Tensor bias_;
};

TORCH_MODULE(QuantizedLinear);

}  // namespace qlorad

#endif  // QLORAD_CORE_QUANT_QUANTIZED_LINEAR_H_
