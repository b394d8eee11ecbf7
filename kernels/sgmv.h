// CPU segmented gather matrix-vector LoRA products for mixed-adapter batches (the
// SGMV pattern; kernels/cuda/sgmv_cuda.h is the CUDA counterpart, for contiguous B in the
// activations' dtype). Each item is one batch row's run of `tokens` contiguous token
// vectors with its adapter's A [r, in] and B [out, r] (or Bᵀ [r, out]):
// y_rows += scaling · (x_rows · Aᵀ) · Bᵀ on the rows in place — no gather or scatter
// copies: items of up to kMatvecMaxBatch tokens (decode) as streaming passes
// (kernels/matvec.h), longer ones as two BLAS calls (bf16 factors first widened into
// per-thread scratch). Items run in parallel (each writes only its own rows of y).
// Torch-free; fp32 activations, factors fp32 or bf16 (widened exactly; --adapter-factors
// bf16 halves the bytes a decode step streams per adapter).
#ifndef QLORAD_KERNELS_SGMV_H_
#define QLORAD_KERNELS_SGMV_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/matvec.h"

namespace qlorad::kernels {

// The largest LoRA rank the kernel takes (the serving engine refuses larger max ranks).
inline constexpr int64_t kSgmvMaxRank = 1024;

struct SgmvItem {
  const float* x = nullptr;  // [tokens, in], row-major
  float* y = nullptr;        // [tokens, out], row-major, accumulated into
  int64_t tokens = 1;
  const void* a = nullptr;  // [rank, in] of `factors`
  const void* b = nullptr;  // [out, rank] of `factors`, or Bᵀ [rank, out] when b_transposed
  int64_t rank = 0;
  float scaling = 1.0f;
  WeightFormat factors = WeightFormat::kF32;  // kF32 or kBf16
  // Bᵀ layout: a decode row's t·Bᵀ is then `rank` streaming passes over out-long rows,
  // where [out, rank] needs a rank-long dot product and a horizontal sum per output.
  bool b_transposed = false;
  // DoRA rows (null for LoRA): after the delta is added, each output column becomes
  // row_gain[o] · (y − bias[o]) + bias[o] (bias null: no bias). Both [out] fp32.
  const float* row_gain = nullptr;
  const float* bias = nullptr;
};

// INVALID_ARGUMENT for null pointers, non-positive sizes, rank > 1024 or factors that are
// neither kF32 nor kBf16.
absl::Status SgmvF32(absl::Span<const SgmvItem> items, int64_t in_features, int64_t out_features);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_SGMV_H_
