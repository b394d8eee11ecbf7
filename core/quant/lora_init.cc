#include "core/quant/lora_init.h"

#include <cmath>
#include <tuple>

#include <ATen/core/grad_mode.h>
#include <ATen/ops/linalg_svd.h>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {
namespace {

absl::Status CheckRank(const at::Tensor& weight, int64_t r) {
  if (!weight.defined() || weight.dim() != 2 || !weight.is_floating_point())
    return absl::InvalidArgumentError("LoRA init: the base weight must be a floating-point [out, in] tensor");
  if (r <= 0 || r > std::min(weight.size(0), weight.size(1)))
    return absl::InvalidArgumentError(absl::StrCat("LoRA init: rank r = ", r, " must be in [1, min(out, in) = ",
                                                   std::min(weight.size(0), weight.size(1)), "]"));
  return absl::OkStatus();
}

at::Tensor LowRankProduct(const LowRankFactors& f, double scaling) { return at::matmul(f.b, f.a) * scaling; }

}  // namespace

absl::StatusOr<LowRankFactors> TruncatedSvdFactors(const at::Tensor& m, int64_t r, double scaling) {
  QLORAD_RETURN_IF_ERROR(CheckRank(m, r));
  return CatchTorchErrors("LoRA init SVD", [&]() -> absl::StatusOr<LowRankFactors> {
    at::NoGradGuard no_grad;
    auto [u, s, vh] = at::linalg_svd(m.to(at::kFloat) / scaling, /*full_matrices=*/false);
    const at::Tensor root = s.narrow(0, 0, r).sqrt();
    LowRankFactors f;
    f.b = (u.narrow(1, 0, r) * root.unsqueeze(0)).contiguous();
    f.a = (root.unsqueeze(1) * vh.narrow(0, 0, r)).contiguous();
    return f;
  });
}

absl::StatusOr<PissaInit> InitializePissa(const at::Tensor& weight, int64_t r, double scaling) {
  PissaInit init;
  QLORAD_ASSIGN_OR_RETURN(init.factors, TruncatedSvdFactors(weight, r, scaling));
  return CatchTorchErrors("PiSSA init", [&]() -> absl::StatusOr<PissaInit> {
    at::NoGradGuard no_grad;
    init.residual = (weight.to(at::kFloat) - LowRankProduct(init.factors, scaling)).contiguous();
    return init;
  });
}

absl::StatusOr<LoftqInit> InitializeLoftq(const at::Tensor& weight, int64_t r, double scaling,
                                          const QuantOptions& options, int64_t iterations) {
  QLORAD_RETURN_IF_ERROR(CheckRank(weight, r));
  if (iterations < 1) return absl::InvalidArgumentError("LoftQ: iterations must be >= 1");
  at::NoGradGuard no_grad;
  const at::Tensor w = weight.to(at::kFloat).contiguous();
  at::Tensor target = w;  // W − scaling·B·A, with B·A = 0 before the first round
  LoftqInit init;
  for (int64_t i = 0; i < iterations; ++i) {
    QLORAD_ASSIGN_OR_RETURN(init.base, Quantize4bitTensor(target, options));
    init.base.dtype = weight.scalar_type();  // the checkpoint's dtype, as quantize-on-load records it
    QLORAD_ASSIGN_OR_RETURN(at::Tensor q, Dequantize4bitTensor(init.base, at::kFloat));
    QLORAD_ASSIGN_OR_RETURN(init.factors, TruncatedSvdFactors(w - q, r, scaling));
    if (i + 1 < iterations) target = (w - LowRankProduct(init.factors, scaling)).contiguous();
  }
  return init;
}

void TallyInitError(const at::Tensor& weight, const at::Tensor& base, const LowRankFactors& factors, double scaling,
                    const at::Tensor& plain_base, InitErrorTally& tally) {
  at::NoGradGuard no_grad;
  const at::Tensor w = weight.to(at::kDouble);
  auto squared = [](const at::Tensor& t) { return t.pow(2).sum().item<double>(); };
  tally.weight_sq += squared(w);
  tally.initialized_sq += squared(w - base.to(at::kDouble) - LowRankProduct(factors, scaling).to(at::kDouble));
  if (plain_base.defined()) tally.plain_quant_sq += squared(w - plain_base.to(at::kDouble));
  ++tally.modules;
}

}  // namespace qlorad
