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
#include "kernels/cpu_isa.h"
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

// The same product for callers that split the rows of several matrices across threads
// themselves (core/model/fused_decoder.h): x is packed once for the instruction set in
// use, then any row range [o0, o1) of y [batch, ldy] is computed from it. Only for
// in % w.blocksize == 0 and batch <= kGemm4bitMaxBatch; shapes are the caller's contract.
inline constexpr int64_t kGemm4bitMaxBatch = 8;
struct Gemm4bitInput {
  CpuIsa isa = CpuIsa::kScalar;
  const float* packed = nullptr;  // batch * in values
  int64_t batch = 0, in = 0;
};
// packed must hold batch * in floats; x is [batch, in] row-major.
Gemm4bitInput PackGemm4bitInput(const float* x, int64_t batch, int64_t in, float* packed);
void Gemm4bitRows(const Packed4bitView& w, const Gemm4bitInput& x, const float* bias, float* y, int64_t ldy,
                  int64_t o0, int64_t o1);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_GEMM4BIT_H_
