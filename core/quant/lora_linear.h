// LoraLinear: a frozen base linear layer plus a trainable low-rank update (PEFT's LoRA):
//   y = base(x) + scaling · B(A(dropout(x)))
// with A [r, in] (kaiming_uniform, a = √5, or with init gaussian N(0, 1/r²) as PEFT's
// "gaussian"), B [out, r] (zeros), scaling = alpha / r or, with rsLoRA, alpha / √r; dropout applies to the LoRA input only. The base is either a
// full-precision weight (+ bias) held as frozen buffers, or a QuantizedLinear submodule;
// it is never mutated. Only lora_A and lora_B (and DoRA's magnitude) are parameters.
//
// DoRA (use_dora; PEFT's formula): with m [out] the trained magnitude (initialised to
// ‖W + s·BA‖ per output row) and n = ‖W + s·BA‖_row computed without gradient (PEFT
// detaches it: the direction's norm is a constant in backward),
//   y = base(x) + (m/n − 1) ⊙ (dropout(x)·Wᵀ) + (m/n) ⊙ s·B(A(dropout(x)))
// i.e. (m/n) ⊙ (W + s·BA)·x + b without dropout. n comes from the cached ‖W‖²_row, one
// base matmul on A's r rows and r×r products, so W is never dequantized per step.
//
//   ASSIGN_OR_RETURN(LoraLinear l, LoraLinearImpl::Create(LoraLinearOptions(16, 32), q));
#ifndef QLORAD_CORE_QUANT_LORA_LINEAR_H_
#define QLORAD_CORE_QUANT_LORA_LINEAR_H_

#include <optional>
#include <ostream>

#include <ATen/ATen.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "absl/status/statusor.h"
#include "core/quant/lora_init.h"
#include "core/quant/quantized_linear.h"
#include "core/util/checkpoint_base.h"

namespace qlorad {

struct LoraLinearOptions {
  LoraLinearOptions(int64_t r, double alpha) : r_(r), alpha_(alpha) {}
  TORCH_ARG(int64_t, r);
  TORCH_ARG(double, alpha);
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, use_rslora) = false;
  // dtype of lora_A / lora_B (PEFT keeps adapters in fp32).
  TORCH_ARG(at::ScalarType, dtype) = at::kFloat;
  // kKaiming or kGaussian here; kLoftq/kPissa layers are created with their derived base
  // and then given their factors with SetFactors (core/quant/lora_init.h).
  TORCH_ARG(LoraInit, init) = LoraInit::kKaiming;
  TORCH_ARG(bool, use_dora) = false;
};

class LoraLinear;

class LoraLinearImpl : public torch::nn::Module {
 public:
  // Full-precision base: weight [out, in] (floating, any device), bias [out] or none.
  static absl::StatusOr<LoraLinear> Create(const LoraLinearOptions& options, at::Tensor weight,
                                           std::optional<at::Tensor> bias);
  // Quantized base (shared, not copied).
  static absl::StatusOr<LoraLinear> Create(const LoraLinearOptions& options, QuantizedLinear base);

  // Use Create (it validates); public only for TORCH_MODULE.
  LoraLinearImpl(const LoraLinearOptions& options, at::Tensor weight, at::Tensor bias,
                 QuantizedLinear quantized, int64_t in_features, int64_t out_features);

  // x [..., in] -> [..., out] in x's dtype.
  at::Tensor forward(const at::Tensor& x);
  // base(x) alone (no adapter). Under gradient checkpointing, per checkpoint_base()
  // (core/util/checkpoint_base.h) while a BaseOutputTape is current
  // (core/util/base_output_tape.h): kKeep records the output on it and, while it replays,
  // returns the recorded tensor; kSkip returns zeros while it replays (kKeep under DoRA).
  // Either way the returned tensor's gradient to x is the base's, grad·W.
  at::Tensor BaseForward(const at::Tensor& x);
  void set_checkpoint_base(CheckpointBase policy) { checkpoint_base_ = policy; }
  CheckpointBase checkpoint_base() const { return checkpoint_base_; }
  // dL/dx of the base alone, grad_y [..., out] -> [..., in] in grad_y's dtype.
  at::Tensor BaseInputGradient(const at::Tensor& grad_y) const;
  // While disabled, forward is BaseForward (DPO's reference model is the base with the
  // adapter disabled, as PEFT's disable_adapter()). Parameters are untouched.
  void set_adapter_enabled(bool enabled) { adapter_enabled_ = enabled; }
  bool adapter_enabled() const { return adapter_enabled_; }

  // Replaces lora_A / lora_B's values (shapes must match; cast to the adapter dtype and
  // device). For the fitted initialisations; not a training operation. With DoRA the
  // magnitude is re-initialised to ‖W + s·BA‖ (as PEFT initialises DoRA after LoftQ/PiSSA).
  absl::Status SetFactors(const LowRankFactors& factors);

  // DoRA: ‖W + s·BA‖ per output row in fp32 (fp64 for fp64 adapters), without gradient. Requires use_dora.
  at::Tensor DoraWeightNorm() const;

  double scaling() const;
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  const LoraLinearOptions& options() const { return options_; }
  bool quantized() const { return !quantized_.is_empty(); }
  const QuantizedLinear& quantized_base() const { return quantized_; }
  // The dense base weight [out, in] and bias (undefined for a quantized base / no bias).
  const at::Tensor& dense_weight() const { return weight_; }
  const at::Tensor& dense_bias() const { return bias_; }

  // The base weight in fp32 [out, in] (dequantized for a quantized base). A fresh tensor.
  absl::StatusOr<at::Tensor> BaseWeight() const;
  // scaling · B @ A [out, in] in fp32 (no gradient).
  at::Tensor DeltaWeight() const;
  // Export: a full-precision copy W' = weight + scaling · B @ A (fp32); with DoRA
  // W' = m / ‖weight + s·BA‖_row ⊙ (weight + s·BA) (PEFT's merge, norm of the weight
  // given). weight is not modified; pass BaseWeight() for the layer's own base.
  at::Tensor Merge(const at::Tensor& weight) const;
  // The inverse of a LoRA merge: merged - scaling · B @ A (restores the base up to fp32
  // rounding). Not defined for DoRA (its merge drops W's row norms).
  at::Tensor Unmerge(const at::Tensor& merged) const;

  at::Tensor lora_A;  // [r, in], trainable
  at::Tensor lora_B;  // [out, r], trainable
  at::Tensor lora_magnitude;  // DoRA only: [out] fp32 (fp64 for fp64 adapters), trainable (PEFT's lora_magnitude_vector)

  void pretty_print(std::ostream& stream) const override;

 private:
  LoraLinearOptions options_;
  at::Tensor weight_;          // dense base (buffer) or undefined
  at::Tensor bias_;            // dense base bias (buffer) or undefined
  QuantizedLinear quantized_;  // quantized base or empty
  int64_t in_features_, out_features_;
  at::Tensor base_row_norm_sq_;  // DoRA: ‖W‖² per output row (buffer, the magnitude's dtype)
  bool adapter_enabled_ = true;
  CheckpointBase checkpoint_base_ = CheckpointBase::kRecompute;

  // DoRA: caches ‖W‖²_row and registers the magnitude, initialised to ‖W + s·BA‖.
  absl::Status InitializeDora();
  at::Tensor BaseBias() const;  // the base's bias or undefined
  at::Tensor ComputeBase(const at::Tensor& x);  // BaseForward without the tape
};

TORCH_MODULE(LoraLinear);

}  // namespace qlorad

#endif  // QLORAD_CORE_QUANT_LORA_LINEAR_H_
