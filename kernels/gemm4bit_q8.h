// 4-bit matmul for decode with 8-bit activations and integer dot products (the scheme of
// llama.cpp's Q4_0 × Q8_0 and IQ4_NL, applied to bitsandbytes' NF4/FP4 layout):
//   - x is quantized per group of 32 values to int8 with one fp32 scale per group,
//     q = round(x · (127 / max|x|)) (to nearest, ties to even), scale = max|x| / 127;
//   - the 16-entry code book is held as int8, round(127 · code);
//   - each 32-weight group's product is an exact int32 sum, then scaled by the weight
//     block's absmax / 127 and the x group's scale, and accumulated in fp32.
// Approximate by design, unlike gemm4bit.h: each weight moves by at most 0.5/127 of its
// block's absmax (the code book's rounding; NF4's own rounding is up to ~0.16 of it) and
// each activation by at most 0.5/127 of its group's max|x|. What that does to a model's
// logits is measured against float64 in tests/bench/RESULTS.md (quant_quality).
// The instruction set is chosen at run time: AVX-512 VNNI (vpshufb code-book lookup,
// vpdpbusd) where present, else AVX2 (vpshufb, vpmaddubsw), else scalar; all compute the
// same integer sums.
#ifndef QLORAD_KERNELS_GEMM4BIT_Q8_H_
#define QLORAD_KERNELS_GEMM4BIT_Q8_H_

#include <cstdint>

#include "kernels/cpu_isa.h"
#include "kernels/quant4bit.h"

namespace qlorad::kernels {

inline constexpr int64_t kQ8Group = 32;

// x quantized for Gemm4bitQ8Rows: for batch row b and 64-value chunk c, 32 int8 of the
// even columns 64c, 64c + 2, ... then 32 of the odd ones (the high and low nibbles of the
// chunk's 32 packed weight bytes) at values + b·in + 64c; the chunk's two group scales
// s0 (columns 64c .. 64c + 31) and s1 as 8 floats [s0 ×4, s1 ×4] at scales + (b·in/64 + c)·8
// (the vector the AVX2 kernel multiplies with, loaded as is).
struct Q8Input {
  CpuIsa isa = CpuIsa::kScalar;
  const int8_t* values = nullptr;
  const float* scales = nullptr;
  int64_t batch = 0, in = 0;
};

// Whether W [out, in] can take the 8-bit path: in % 64 == 0 and blocksize % 64 == 0.
bool Gemm4bitQ8Supports(const Packed4bitView& w, int64_t in);

// Quantizes x [batch, in] (row-major, in % 64 == 0) into values (batch · in bytes) and
// scales (Q8ScaleFloats(batch, in) floats), both owned by the caller.
inline int64_t Q8ScaleFloats(int64_t batch, int64_t in) { return batch * in / 8; }
Q8Input QuantizeQ8Input(const float* x, int64_t batch, int64_t in, int8_t* values, float* scales);

// For weight rows o in [o0, o1) and every batch row b of x:
//   y[b · ldy + o] ≈ sum_i x[b, i] · W[o, i] (+ bias[o] when bias != nullptr).
// W must satisfy Gemm4bitQ8Supports(w, x.in); W is [out, in] row-major as quantized.
void Gemm4bitQ8Rows(const Packed4bitView& w, const Q8Input& x, const float* bias, float* y, int64_t ldy,
                    int64_t o0, int64_t o1);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_GEMM4BIT_Q8_H_
