// CPU segmented gather matrix-vector LoRA products for mixed-adapter batches (the
// SGMV pattern; kernels/cuda/sgmv_cuda.h is the CUDA version). Each item is one
// batch row's run of `tokens` contiguous token vectors with its adapter's A [r, in]
// and B [out, r]: y_rows += scaling · (x_rows · Aᵀ) · Bᵀ on the rows in place — no
// gather or scatter copies: items of up to kMatvecMaxBatch tokens (decode) as two
// streaming matrix-vector passes (kernels/matvec.h), longer ones as two BLAS calls.
// Items run in parallel (each writes only its own rows of y). Torch-free; fp32.
#ifndef QLORAD_KERNELS_SGMV_H_
#define QLORAD_KERNELS_SGMV_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace qlorad::kernels {

// The largest LoRA rank the kernel takes (the serving engine refuses larger max ranks).
inline constexpr int64_t kSgmvMaxRank = 1024;

struct SgmvItem {
  const float* x = nullptr;  // [tokens, in], row-major
  float* y = nullptr;        // [tokens, out], row-major, accumulated into
  int64_t tokens = 1;
  const float* a = nullptr;  // [rank, in]
  const float* b = nullptr;  // [out, rank]
  int64_t rank = 0;
  float scaling = 1.0f;
};

// INVALID_ARGUMENT for null pointers, non-positive sizes or rank > 1024.
absl::Status SgmvF32(absl::Span<const SgmvItem> items, int64_t in_features, int64_t out_features);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_SGMV_H_
