// LoraLinear: construction, forward and merge/unmerge.
#include "core/quant/lora_linear.h"

#include <cmath>
#include <memory>
#include <utility>

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/init.h>

#include "absl/strings/str_cat.h"
#include "core/quant/quant4bit_matmul.h"
#include "core/util/base_output_tape.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "core/util/training_random.h"

namespace qlorad {
namespace {

absl::Status CheckOptions(const LoraLinearOptions& o) {
  if (o.r() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("LoraLinear: rank r = ", o.r(), " must be > 0"));
  }
  if (!(o.alpha() > 0.0) || !std::isfinite(o.alpha())) {
    return absl::InvalidArgumentError(absl::StrCat("LoraLinear: lora_alpha = ", o.alpha(),
                                                   " must be a positive number"));
  }
  if (!(o.dropout() >= 0.0 && o.dropout() < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("LoraLinear: lora_dropout = ", o.dropout(),
                                                   " must be in [0, 1)"));
  }
  if (o.dtype() != at::kFloat && o.dtype() != at::kBFloat16 && o.dtype() != at::kHalf &&
      o.dtype() != at::kDouble) {
    return absl::InvalidArgumentError("LoraLinear: adapter dtype must be floating point");
  }
  return absl::OkStatus();
}

// A replayed base output: forward returns the recorded value; backward gives x the base's
// own input gradient (what the matmul's autograd would: grad·W, re-dequantized for 4 bits).
struct ReplayedBase : public torch::autograd::Function<ReplayedBase> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& recorded,
                            const LoraLinearImpl* layer) {
    TORCH_CHECK(recorded.dim() == x.dim() && recorded.sizes().slice(0, x.dim() - 1) == x.sizes().slice(0, x.dim() - 1) &&
                    recorded.size(-1) == layer->out_features() && recorded.device() == x.device(),
                "LoraLinear: a replayed base output of shape ", recorded.sizes(), " on ", recorded.device(),
                " for an input of shape ", x.sizes(), " on ", x.device(), " and out_features = ", layer->out_features(),
                " (the recompute took another path than the forward)");
    ctx->saved_data["layer"] = reinterpret_cast<int64_t>(layer);
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    return recorded;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto* layer = reinterpret_cast<const LoraLinearImpl*>(ctx->saved_data["layer"].toInt());
    const auto x_dtype = static_cast<at::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    return {layer->BaseInputGradient(grad_outputs[0]).to(x_dtype), at::Tensor(), at::Tensor()};
  }
};

at::Tensor ReplayedBaseOutput(const at::Tensor& x, const at::Tensor& recorded, const LoraLinearImpl& layer) {
  return ReplayedBase::apply(x, recorded, &layer);
}

}  // namespace

absl::StatusOr<LoraLinear> LoraLinearImpl::Create(const LoraLinearOptions& options,
                                                  at::Tensor weight, std::optional<at::Tensor> bias) {
  QLORAD_RETURN_IF_ERROR(CheckOptions(options));
  if (!weight.defined() || weight.dim() != 2 || weight.numel() == 0 || !weight.is_floating_point()) {
    return absl::InvalidArgumentError(
        "LoraLinear: base weight must be a non-empty floating-point [out, in] tensor");
  }
  at::Tensor b = bias.has_value() ? *bias : at::Tensor();
  if (b.defined() && (b.dim() != 1 || b.size(0) != weight.size(0))) {
    return absl::InvalidArgumentError(absl::StrCat("LoraLinear: bias of shape ", c10::str(b.sizes()),
                                                   ", expected [", weight.size(0), "]"));
  }
  return CatchTorchErrors("LoraLinear", [&]() -> absl::StatusOr<LoraLinear> {
    const int64_t in = weight.size(1), out = weight.size(0);
    LoraLinear layer(std::make_shared<LoraLinearImpl>(options, weight.detach(), b.defined() ? b.detach() : b,
                                                      QuantizedLinear(nullptr), in, out));
    if (options.use_dora()) QLORAD_RETURN_IF_ERROR(layer->InitializeDora());
    return layer;
  });
}

absl::StatusOr<LoraLinear> LoraLinearImpl::Create(const LoraLinearOptions& options,
                                                  QuantizedLinear base) {
  QLORAD_RETURN_IF_ERROR(CheckOptions(options));
  if (base.is_empty()) return absl::InvalidArgumentError("LoraLinear: empty quantized base");
  return CatchTorchErrors("LoraLinear", [&]() -> absl::StatusOr<LoraLinear> {
    const int64_t in = base->in_features(), out = base->out_features();
    LoraLinear layer(std::make_shared<LoraLinearImpl>(options, at::Tensor(), at::Tensor(), std::move(base), in, out));
    if (options.use_dora()) QLORAD_RETURN_IF_ERROR(layer->InitializeDora());
    return layer;
  });
}

LoraLinearImpl::LoraLinearImpl(const LoraLinearOptions& options, at::Tensor weight,
                               at::Tensor bias, QuantizedLinear quantized, int64_t in_features,
                               int64_t out_features)
    : options_(options),
      weight_(std::move(weight)),
      bias_(std::move(bias)),
      quantized_(std::move(quantized)),
      in_features_(in_features),
      out_features_(out_features) {
  const at::Device device = quantized_.is_empty() ? weight_.device() : quantized_->state().device();
  const auto opts = at::TensorOptions().dtype(options_.dtype()).device(device);
  at::Tensor a = at::empty({options_.r(), in_features_}, opts);
  {
    at::NoGradGuard no_grad;
    if (options_.init() == LoraInit::kGaussian) {
      torch::nn::init::normal_(a, 0.0, 1.0 / static_cast<double>(options_.r()));  // PEFT's "gaussian"
    } else {
      torch::nn::init::kaiming_uniform_(a, std::sqrt(5.0));  // PEFT's default
    }
  }
  lora_A = register_parameter("lora_A", a);
  lora_B = register_parameter("lora_B", at::zeros({out_features_, options_.r()}, opts));
  if (!quantized_.is_empty()) {
    register_module("base", quantized_);
  } else {
    register_buffer("weight", weight_);
    if (bias_.defined()) register_buffer("bias", bias_);
  }
}

absl::Status LoraLinearImpl::InitializeDora() {
  at::Tensor w = weight_;
  if (!quantized_.is_empty()) {
    QLORAD_ASSIGN_OR_RETURN(w, quantized_->DequantizedWeight(at::kFloat));
  }
  return CatchTorchErrors("LoraLinear DoRA init", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    const at::Tensor wide = w.to(lora_A.device(), at::promote_types(lora_A.scalar_type(), at::kFloat));
    base_row_norm_sq_ = register_buffer("base_row_norm_sq", wide.pow(2).sum(1));
    lora_magnitude = register_parameter("lora_magnitude_vector", DoraWeightNorm().clone());
    return absl::OkStatus();
  });
}

at::Tensor LoraLinearImpl::BaseBias() const { return quantized_.is_empty() ? bias_ : quantized_->bias(); }

at::Tensor LoraLinearImpl::DoraWeightNorm() const {
  TORCH_CHECK(base_row_norm_sq_.defined(), "LoraLinear: DoraWeightNorm without use_dora");
  at::NoGradGuard no_grad;
  const at::ScalarType wide = at::promote_types(lora_A.scalar_type(), at::kFloat);  // fp32, or fp64 adapters
  const at::Tensor a = lora_A.detach().to(wide), b = lora_B.detach().to(wide);
  const double s = scaling();
  // ‖W + s·BA‖²_i = ‖W_i‖² + 2s·Σ_k B_ik (A·W_iᵀ)_k + s²·(B·(A·Aᵀ)·Bᵀ)_ii
  at::Tensor wa = const_cast<LoraLinearImpl*>(this)->BaseForward(a);  // A·Wᵀ + b: [r, out]
  if (const at::Tensor bias = BaseBias(); bias.defined()) wa = wa - bias.to(wa.scalar_type());
  const at::Tensor cross = (b * wa.to(b.scalar_type()).t()).sum(1);
  const at::Tensor ba_sq = (at::matmul(b, at::matmul(a, a.t())) * b).sum(1);
  return (base_row_norm_sq_ + cross * (2 * s) + ba_sq * (s * s)).clamp_min(0).sqrt();
}

absl::Status LoraLinearImpl::SetFactors(const LowRankFactors& factors) {
  if (!factors.a.defined() || !factors.b.defined() || factors.a.sizes() != lora_A.sizes() ||
      factors.b.sizes() != lora_B.sizes())
    return absl::InvalidArgumentError(absl::StrCat("LoraLinear: initial factors must be A ", c10::str(lora_A.sizes()),
                                                   " and B ", c10::str(lora_B.sizes())));
  return CatchTorchErrors("LoraLinear::SetFactors", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    lora_A.copy_(factors.a);
    lora_B.copy_(factors.b);
    if (lora_magnitude.defined()) lora_magnitude.copy_(DoraWeightNorm());
    return absl::OkStatus();
  });
}

double LoraLinearImpl::scaling() const {
  const double r = static_cast<double>(options_.r());
  return options_.use_rslora() ? options_.alpha() / std::sqrt(r) : options_.alpha() / r;
}

at::Tensor LoraLinearImpl::BaseForward(const at::Tensor& x) {
  BaseOutputTape* tape = checkpoint_base_ == CheckpointBase::kRecompute ? nullptr : BaseOutputTape::Current();
  if (tape == nullptr) return ComputeBase(x);
  const bool keep = KeepsBaseOutput(checkpoint_base_, lora_magnitude.defined());
  if (tape->replaying()) {
    if (keep) return ReplayedBaseOutput(x, tape->Next(this), *this);
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = out_features_;
    return ReplayedBaseOutput(x, at::zeros({1}, x.options()).expand(shape), *this);  // no [tokens, out] buffer
  }
  at::Tensor y = ComputeBase(x);
  if (keep) tape->Record(this, y);
  return y;
}

at::Tensor LoraLinearImpl::BaseInputGradient(const at::Tensor& grad_y) const {
  TORCH_CHECK(grad_y.dim() >= 1 && grad_y.size(-1) == out_features_, "LoraLinear: output gradient of shape ",
              grad_y.sizes(), " does not end in out_features = ", out_features_);
  if (quantized_.is_empty()) return at::matmul(grad_y, weight_.to(grad_y.device(), grad_y.scalar_type()));
  std::vector<int64_t> shape = grad_y.sizes().vec();
  shape.back() = in_features_;
  absl::StatusOr<at::Tensor> dx =
      Quant4bitMatmulTransposed(quantized_->state(), grad_y.reshape({-1, out_features_}).contiguous());
  TORCH_CHECK(dx.ok(), std::string(dx.status().message()));
  return dx->view(shape).to(grad_y.scalar_type());
}

at::Tensor LoraLinearImpl::ComputeBase(const at::Tensor& x) {
  if (!quantized_.is_empty()) return quantized_->forward(x);
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == in_features_, "LoraLinear: input of shape ", x.sizes(),
              " does not end in in_features = ", in_features_);
  const at::Tensor w = weight_.to(x.device(), x.scalar_type());
  return bias_.defined() ? at::linear(x, w, bias_.to(x.device(), x.scalar_type()))
                         : at::linear(x, w);
}

at::Tensor LoraLinearImpl::forward(const at::Tensor& x) {
  at::Tensor y = BaseForward(x);
  if (!adapter_enabled_) return y;
  at::Tensor h = x.to(lora_A.scalar_type());
  h = ShardInvariantDropout(h, options_.dropout(), is_training());
  const at::Tensor delta = at::linear(at::linear(h, lora_A), lora_B) * scaling();
  if (!lora_magnitude.defined()) return y + delta.to(y.scalar_type());
  const at::Tensor gain = lora_magnitude / DoraWeightNorm();  // m / n, gradient to m only
  // PEFT: the base term uses the dropped-out input when dropout is active.
  const bool dropped = is_training() && options_.dropout() > 0;
  at::Tensor base = dropped ? BaseForward(h.to(y.scalar_type())) : y;
  if (const at::Tensor bias = BaseBias(); bias.defined()) base = base - bias.to(base.scalar_type());
  const at::Tensor dora = (gain - 1) * base.to(gain.scalar_type()) + gain * delta.to(gain.scalar_type());
  return y + dora.to(y.scalar_type());
}

absl::StatusOr<at::Tensor> LoraLinearImpl::BaseWeight() const {
  if (!quantized_.is_empty()) return quantized_->DequantizedWeight(at::kFloat);
  return CatchTorchErrors("LoraLinear::BaseWeight",
                          [&]() -> absl::StatusOr<at::Tensor> { return weight_.to(at::kFloat).clone(); });
}

at::Tensor LoraLinearImpl::DeltaWeight() const {
  at::NoGradGuard no_grad;
  return at::matmul(lora_B.to(at::kFloat), lora_A.to(at::kFloat)) * scaling();
}

at::Tensor LoraLinearImpl::Merge(const at::Tensor& weight) const {
  at::NoGradGuard no_grad;
  const at::Tensor merged = weight.to(at::kFloat) + DeltaWeight().to(weight.device());
  if (!lora_magnitude.defined()) return merged;
  const at::Tensor gain = lora_magnitude.to(merged.device(), at::kFloat) / merged.norm(2, {1});
  return merged * gain.unsqueeze(1);
}

at::Tensor LoraLinearImpl::Unmerge(const at::Tensor& merged) const {
  TORCH_CHECK(!lora_magnitude.defined(), "LoraLinear: a DoRA merge cannot be undone (W's row norms are not kept)");
  at::NoGradGuard no_grad;
  return merged.to(at::kFloat) - DeltaWeight().to(merged.device());
}

void LoraLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "qlorad::LoraLinear(in_features=" << in_features_ << ", out_features=" << out_features_
         << ", r=" << options_.r() << ", alpha=" << options_.alpha() << ", scaling=" << scaling()
         << ", dropout=" << options_.dropout() << ", dora=" << options_.use_dora() << ", base=" << (quantized() ? "nf4/fp4" : "dense")
         << ")";
}

}  // namespace qlorad
