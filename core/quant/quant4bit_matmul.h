// Matrix products with a 4-bit weight W [out, in] (Quant4bitState of shape [out, in]),
// device-generic: the result is on x's device and in x's dtype.
//   * CPU, at most kFusedMaxRows rows: the fused kernel (kernels/gemm4bit.h), no W in memory
//     (on CUDA, in a CUDA build: the fused CUDA kernel, kernels/cuda/gemv4bit.cu).
//   * otherwise: W is dequantized tile by tile (at most kTileElements values at a time;
//     the whole W at once on CUDA, with the CUDA kernel when built with CUDA, else
//     dequantized on the CPU and moved) and multiplied with at::matmul (BLAS/cuBLAS).
#ifndef QLORAD_CORE_QUANT_QUANT4BIT_MATMUL_H_
#define QLORAD_CORE_QUANT_QUANT4BIT_MATMUL_H_

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "core/quant/quant_state.h"

namespace qlorad {

inline constexpr int64_t kFusedMaxRows = 16;
inline constexpr int64_t kTileElements = int64_t{1} << 22;

// y [rows, out] = x [rows, in] · Wᵀ. No autograd.
absl::StatusOr<at::Tensor> Quant4bitMatmul(const Quant4bitState& w, const at::Tensor& x2d);
// dx [rows, in] = dy [rows, out] · W. No autograd.
absl::StatusOr<at::Tensor> Quant4bitMatmulTransposed(const Quant4bitState& w, const at::Tensor& dy2d);

// y = x · Wᵀ with autograd to x only: a custom autograd function whose backward
// re-dequantizes W (only the packed state is kept for backward, never an fp32 W).
// x2d [rows, in]; throws c10::Error (TORCH_CHECK) on shape errors, like a module.
at::Tensor Quant4bitLinearAutograd(const at::Tensor& x2d, const Quant4bitState& w);

}  // namespace qlorad

#endif  // QLORAD_CORE_QUANT_QUANT4BIT_MATMUL_H_
