// Adapter initialisations that fit the low-rank factors to the base weight, so the
// base the adapter is trained over is not the checkpoint's W but a base derived from it:
//
//   PiSSA (Meng et al. 2024; PEFT init_lora_weights="pissa"): B·A = the top-r singular
//     part of W / scaling, base = W − scaling·B·A (dense residual, or its 4-bit
//     quantization on a QLoRA base). At step 0 base + scaling·B·A = W (dense, exactly up
//     to rounding).
//   LoftQ (Li et al. 2023; PEFT init_lora_weights="loftq"): alternate, `iterations` times,
//     Q = quant(W − scaling·B·A) and (B, A) = the rank-r SVD of (W − dequant(Q)) / scaling,
//     starting from B·A = 0. The last Q is the base; B, A fit that Q's error, so
//     ‖W − (Q + scaling·B·A)‖ ≤ ‖W − dequant(quant(W))‖ for one iteration.
//
// Both split the singular values evenly: B = U_r·√S_r, A = √S_r·V_rᵀ (PEFT's layout).
// PEFT's loftq_init does not divide by scaling (it assumes scaling 1); here the factors
// are divided by scaling so Q + scaling·B·A ≈ W holds for any lora_alpha.
// The SVD runs in fp32 on the weight's device; results are fp32 on that device.
#ifndef QLORAD_CORE_QUANT_LORA_INIT_H_
#define QLORAD_CORE_QUANT_LORA_INIT_H_

#include <cstdint>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "core/quant/quant_state.h"

namespace qlorad {

// LoraConfig::init's values ("kaiming" | "gaussian" | "loftq" | "pissa"; validated there).
enum class LoraInit { kKaiming, kGaussian, kLoftq, kPissa };

struct LowRankFactors {
  at::Tensor a;  // [r, in]
  at::Tensor b;  // [out, r]
};

// The rank-r truncated SVD of `m` [out, in] / scaling, split as above. r ≤ min(out, in).
absl::StatusOr<LowRankFactors> TruncatedSvdFactors(const at::Tensor& m, int64_t r, double scaling);

struct PissaInit {
  LowRankFactors factors;
  at::Tensor residual;  // W − scaling·B·A, fp32
};
absl::StatusOr<PissaInit> InitializePissa(const at::Tensor& weight, int64_t r, double scaling);

struct LoftqInit {
  LowRankFactors factors;
  Quant4bitState base;  // the quantized base the factors belong to
};
// `options` must be the 4-bit layout the training base uses (type, block sizes, double quant).
absl::StatusOr<LoftqInit> InitializeLoftq(const at::Tensor& weight, int64_t r, double scaling,
                                          const QuantOptions& options, int64_t iterations);

// Squared Frobenius norms at step 0, summed over modules: what an init buys.
struct InitErrorTally {
  double weight_sq = 0;        // ‖W‖²
  double plain_quant_sq = 0;   // ‖W − dequant(quant(W))‖² (4-bit bases only)
  double initialized_sq = 0;   // ‖W − (base + scaling·B·A)‖²
  int64_t modules = 0;
};
// Adds one module's norms. base: the initialised layer's base weight; plain_base: the
// checkpoint's W quantized as usual (undefined for a dense base).
void TallyInitError(const at::Tensor& weight, const at::Tensor& base, const LowRankFactors& factors, double scaling,
                    const at::Tensor& plain_base, InitErrorTally& tally);

}  // namespace qlorad

#endif  // QLORAD_CORE_QUANT_LORA_INIT_H_
