// Fused / tiled products with 4-bit weights and the autograd function around them.
#include "core/quant/quant4bit_matmul.h"

#include <algorithm>
#include <string>

#include <torch/csrc/autograd/custom_function.h>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "kernels/gemm4bit.h"

#if defined(QLORAD_QUANT_WITH_CUDA)
#include <ATen/cuda/CUDAContext.h>

#include "kernels/cuda/quant4bit_cuda.h"
#endif

namespace qlorad {
namespace {

absl::Status CheckShapes(const Quant4bitState& w, const at::Tensor& t, int64_t cols,
                         const char* what) {
  if (w.shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the 4-bit weight has ", w.shape.size(),
                                                   " dimensions, expected 2 ([out, in])"));
  }
  if (t.dim() != 2 || t.size(1) != cols) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": input of shape ", c10::str(t.sizes()),
                                                   " does not fit the weight [", w.shape[0], ", ",
                                                   w.shape[1], "] (expected [rows, ", cols, "])"));
  }
  if (!t.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": input dtype ",
                                                   c10::toString(t.scalar_type()),
                                                   " is not floating point"));
  }
  return absl::OkStatus();
}

// fp32 and bf16 compute in their own dtype; other floating types through fp32.
at::ScalarType ComputeDtype(at::ScalarType t) {
  return t == at::kBFloat16 ? at::kBFloat16 : at::kFloat;
}

int64_t TileRows(const Quant4bitState& w) {
  if (!w.device().is_cpu()) return w.shape[0];  // device kernels dequantize whole tensors
  return std::clamp<int64_t>(kTileElements / w.shape[1], 1, w.shape[0]);
}

}  // namespace

absl::StatusOr<at::Tensor> Quant4bitMatmul(const Quant4bitState& w, const at::Tensor& x2d) {
  if (w.shape.size() != 2) return CheckShapes(w, x2d, 0, "Quant4bitMatmul");
  QLORAD_RETURN_IF_ERROR(CheckShapes(w, x2d, w.shape[1], "Quant4bitMatmul"));
  const int64_t out = w.shape[0], in = w.shape[1], rows = x2d.size(0);
  return CatchTorchErrors("Quant4bitMatmul", [&]() -> absl::StatusOr<at::Tensor> {
    if (x2d.device().is_cpu() && w.device().is_cpu() && rows <= kFusedMaxRows && rows > 0) {
      QLORAD_RETURN_IF_ERROR(w.Validate(/*check_code_book=*/false));
      const at::Tensor xf = x2d.to(at::kFloat).contiguous();
      at::Tensor y = at::empty({rows, out}, at::kFloat);
      QLORAD_RETURN_IF_ERROR(kernels::Gemm4bit(
          MakeView(w), out, in, absl::MakeConstSpan(xf.data_ptr<float>(), rows * in), rows, {},
          absl::MakeSpan(y.data_ptr<float>(), rows * out)));
      return y.to(x2d.scalar_type());
    }
#if defined(QLORAD_QUANT_WITH_CUDA)
    if (x2d.is_cuda() && w.device() == x2d.device() && rows <= kFusedMaxRows && rows > 0) {
      // The fused CUDA kernel (one warp per output row), fp32.
      QLORAD_RETURN_IF_ERROR(w.Validate(/*check_code_book=*/false));
      const kernels::cuda::DeviceWeight4bit dw = MakeDeviceView(w);
      const at::Tensor xf = x2d.to(at::kFloat).contiguous();
      at::Tensor y = at::empty({rows, out}, xf.options());
      const char* err = kernels::cuda::Gemv4bitF32(dw, out, in, xf.data_ptr<float>(), rows, nullptr,
                                                   y.data_ptr<float>(),
                                                   at::cuda::getCurrentCUDAStream().stream());
      if (err != nullptr) return absl::InternalError(absl::StrCat("Gemv4bit (CUDA): ", err));
      return y.to(x2d.scalar_type());
    }
#endif
    const at::ScalarType cd = ComputeDtype(x2d.scalar_type());
    const at::Tensor xc = x2d.to(cd);
    const int64_t tile = TileRows(w);
    if (tile >= out) {
      QLORAD_ASSIGN_OR_RETURN(at::Tensor wd, Dequantize4bitRange(w, 0, out * in, cd));
      return at::matmul(xc, wd.view({out, in}).to(x2d.device()).t()).to(x2d.scalar_type());
    }
    at::Tensor y = at::empty({rows, out}, xc.options());
    for (int64_t r0 = 0; r0 < out; r0 += tile) {
      const int64_t len = std::min(tile, out - r0);
      QLORAD_ASSIGN_OR_RETURN(at::Tensor wt, Dequantize4bitRange(w, r0 * in, len * in, cd));
      y.narrow(1, r0, len).copy_(at::matmul(xc, wt.view({len, in}).to(x2d.device()).t()));
    }
    return y.to(x2d.scalar_type());
  });
}

absl::StatusOr<at::Tensor> Quant4bitMatmulTransposed(const Quant4bitState& w, const at::Tensor& dy2d) {
  if (w.shape.size() != 2) return CheckShapes(w, dy2d, 0, "Quant4bitMatmulTransposed");
  QLORAD_RETURN_IF_ERROR(CheckShapes(w, dy2d, w.shape[0], "Quant4bitMatmulTransposed"));
  const int64_t out = w.shape[0], in = w.shape[1];
  return CatchTorchErrors("Quant4bitMatmulTransposed", [&]() -> absl::StatusOr<at::Tensor> {
    const at::ScalarType cd = ComputeDtype(dy2d.scalar_type());
    const at::Tensor dy = dy2d.to(cd);
    const int64_t tile = TileRows(w);
    at::Tensor dx;
    for (int64_t r0 = 0; r0 < out; r0 += tile) {
      const int64_t len = std::min(tile, out - r0);
      QLORAD_ASSIGN_OR_RETURN(at::Tensor wt, Dequantize4bitRange(w, r0 * in, len * in, cd));
      at::Tensor part = at::matmul(dy.narrow(1, r0, len), wt.view({len, in}).to(dy2d.device()));
      dx = dx.defined() ? dx.add_(part) : part;
    }
    return dx.to(dy2d.scalar_type());
  });
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor ValueOrThrow(absl::StatusOr<at::Tensor> r) {
  TORCH_CHECK(r.ok(), std::string(r.status().message()));
  return *std::move(r);
}

// Saved for backward: the state's tensors (packed 4-bit data and scales) and its scalars.
class Quant4bitLinearFunction : public torch::autograd::Function<Quant4bitLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const Quant4bitState* w) {
    ctx->saved_data["packed"] = w->packed;
    ctx->saved_data["absmax"] = w->absmax;
    ctx->saved_data["quant_map"] = w->quant_map;
    ctx->saved_data["nested"] = w->nested();
    if (w->nested()) {
      ctx->saved_data["nested_absmax"] = w->nested_absmax;
      ctx->saved_data["nested_quant_map"] = w->nested_quant_map;
      ctx->saved_data["nested_offset"] = static_cast<double>(w->nested_offset);
      ctx->saved_data["nested_blocksize"] = w->nested_blocksize;
    }
    ctx->saved_data["quant_type"] = static_cast<int64_t>(w->quant_type);
    ctx->saved_data["blocksize"] = w->blocksize;
    ctx->saved_data["out"] = w->shape[0];
    ctx->saved_data["in"] = w->shape[1];
    ctx->saved_data["dtype"] = static_cast<int64_t>(w->dtype);
    return ValueOrThrow(Quant4bitMatmul(*w, x));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    Quant4bitState w;
    auto& d = ctx->saved_data;
    w.packed = d["packed"].toTensor();
    w.absmax = d["absmax"].toTensor();
    w.quant_map = d["quant_map"].toTensor();
    if (d["nested"].toBool()) {
      w.nested_absmax = d["nested_absmax"].toTensor();
      w.nested_quant_map = d["nested_quant_map"].toTensor();
      w.nested_offset = static_cast<float>(d["nested_offset"].toDouble());
      w.nested_blocksize = d["nested_blocksize"].toInt();
    }
    w.quant_type = static_cast<kernels::QuantType>(d["quant_type"].toInt());
    w.blocksize = d["blocksize"].toInt();
    w.shape = {d["out"].toInt(), d["in"].toInt()};
    w.dtype = static_cast<at::ScalarType>(d["dtype"].toInt());
    at::Tensor dx = ValueOrThrow(Quant4bitMatmulTransposed(w, grad_outputs[0].contiguous()));
    return {dx, at::Tensor()};
  }
};

}  // namespace

at::Tensor Quant4bitLinearAutograd(const at::Tensor& x2d, const Quant4bitState& w) {
  return Quant4bitLinearFunction::apply(x2d, &w);
}

}  // namespace qlorad
