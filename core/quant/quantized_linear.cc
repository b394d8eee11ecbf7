// QuantizedLinear: construction, buffers and forward dispatch.
#include "core/quant/quantized_linear.h"

#include <memory>
#include <utility>

#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/quant/quant4bit_matmul.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {
namespace {

absl::Status CheckBias(const std::optional<at::Tensor>& bias, int64_t out, at::Device device) {
  if (!bias.has_value() || !bias->defined()) return absl::OkStatus();
  if (bias->dim() != 1 || bias->size(0) != out) {
    return absl::InvalidArgumentError(absl::StrCat("QuantizedLinear: bias of shape ",
                                                   c10::str(bias->sizes()), ", expected [", out, "]"));
  }
  if (!bias->is_floating_point()) {
    return absl::InvalidArgumentError("QuantizedLinear: bias must be a floating-point tensor");
  }
  if (bias->device() != device) {
    return absl::InvalidArgumentError(absl::StrCat("QuantizedLinear: bias is on ", bias->device().str(),
                                                   ", the weight on ", device.str()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<QuantizedLinear> QuantizedLinearImpl::FromWeight(const at::Tensor& weight,
                                                                std::optional<at::Tensor> bias,
                                                                const QuantOptions& options) {
  if (!weight.defined() || weight.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QuantizedLinear: weight must be 2-D [out, in], got ",
        weight.defined() ? c10::str(weight.sizes()) : std::string("an undefined tensor")));
  }
  QLORAD_RETURN_IF_ERROR(CheckBias(bias, weight.size(0), weight.device()));
  QLORAD_ASSIGN_OR_RETURN(Quant4bitState state, Quantize4bitTensor(weight, options));
  return FromState(std::move(state), std::move(bias));
}

absl::StatusOr<QuantizedLinear> QuantizedLinearImpl::FromState(Quant4bitState state,
                                                               std::optional<at::Tensor> bias) {
  if (state.shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("QuantizedLinear: quantized weight has ",
                                                   state.shape.size(), " dimensions, expected 2"));
  }
  QLORAD_RETURN_IF_ERROR(state.Validate());
  QLORAD_RETURN_IF_ERROR(CheckBias(bias, state.shape[0], state.device()));
  return CatchTorchErrors("QuantizedLinear", [&]() -> absl::StatusOr<QuantizedLinear> {
    at::Tensor b = bias.has_value() ? *bias : at::Tensor();
    return QuantizedLinear(std::make_shared<QuantizedLinearImpl>(std::move(state), std::move(b)));
  });
}

QuantizedLinearImpl::QuantizedLinearImpl(Quant4bitState state, at::Tensor bias)
    : state_(std::move(state)), bias_(std::move(bias)) {
  // Same TensorImpls as state_: Module::to() updates them in place (set_data).
  register_buffer("weight", state_.packed);
  register_buffer("absmax", state_.absmax);
  register_buffer("quant_map", state_.quant_map);
  if (state_.nested()) {
    register_buffer("nested_absmax", state_.nested_absmax);
    register_buffer("nested_quant_map", state_.nested_quant_map);
  }
  if (bias_.defined()) {
    bias_ = bias_.detach();
    register_buffer("bias", bias_);
  }
}

at::Tensor QuantizedLinearImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == in_features(), "QuantizedLinear: input of shape ",
              x.sizes(), " does not end in in_features = ", in_features());
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = out_features();
  const at::Tensor x2d = x.reshape({-1, in_features()});
  at::Tensor y;
  if (at::GradMode::is_enabled() && x.requires_grad()) {
    y = Quant4bitLinearAutograd(x2d, state_);
  } else {
    auto r = Quant4bitMatmul(state_, x2d);
    TORCH_CHECK(r.ok(), std::string(r.status().message()));
    y = *std::move(r);
  }
  if (bias_.defined()) y = y + bias_.to(y.device(), y.scalar_type());
  return y.view(out_shape);
}

absl::StatusOr<at::Tensor> QuantizedLinearImpl::DequantizedWeight(at::ScalarType dtype) const {
  return Dequantize4bitTensor(state_, dtype);
}

void QuantizedLinearImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  to(device, non_blocking);
  to(dtype, non_blocking);
}

void QuantizedLinearImpl::to(torch::Dtype dtype, bool non_blocking) {
  if (bias_.defined() && at::isFloatingType(dtype)) bias_.set_data(bias_.to(dtype, non_blocking));
}

void QuantizedLinearImpl::to(torch::Device device, bool non_blocking) {
  torch::nn::Module::to(device, non_blocking);  // all buffers, in place (set_data)
}

void QuantizedLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "qlorad::QuantizedLinear(in_features=" << in_features()
         << ", out_features=" << out_features() << ", quant_type="
         << kernels::QuantTypeName(state_.quant_type) << ", blocksize=" << state_.blocksize
         << ", double_quant=" << (state_.nested() ? "true" : "false")
         << ", bias=" << (bias_.defined() ? "true" : "false") << ")";
}

}  // namespace qlorad
