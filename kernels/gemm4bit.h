// Fused 4-bit matmul for small batches (decode): y = x · dequant(W)ᵀ (+ bias) without
// materializing W. Each 32-weight group is decoded into registers, scaled by its block's
// absmax (plain or double-quantized) and accumulated for every batch row; threads split
// the output rows. The instruction set is chosen at run time (cpu_isa.h). Results equal
// the dequantize-then-matmul product up to fp32 summation order (not bit for bit).
#ifndef QLORAD_KERNELS_GEMM4BIT_H_
#define QLORAD_KERNELS_GEMM4BIT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/quant4bit.h"

namespace qlorad::kernels {

// W: w.numel == out_features * in_features, row-major [out, in] as flattened for
// quantization. x: [batch, in_features] row-major fp32 (x.size() == batch * in).
// bias: empty or out_features values. y: [batch, out_features] (overwritten).
// Any in_features works; in % blocksize == 0 takes the fast path (LLM shapes), other
// shapes dequantize one row at a time into a scratch buffer.
absl::Status Gemm4bit(const Packed4bitView& w, int64_t out_features, int64_t in_features,
                      absl::Span<const float> x, int64_t batch, absl::Span<const float> bias,
                      absl::Span<float> y);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_GEMM4BIT_H_
