// Per-ISA bodies behind kernels/decode_ops.h; only decode_ops.cc calls them.
#ifndef QLORAD_KERNELS_INTERNAL_DECODE_OPS_IMPL_H_
#define QLORAD_KERNELS_INTERNAL_DECODE_OPS_IMPL_H_

#include <cstdint>

namespace qlorad::kernels::internal {

// Coefficients of the vector expf shared by the AVX2 and AVX-512 bodies (Cephes'
// expf): e^x = 2^n · e^r with n = round(x · log2 e), r = x − n · ln 2 in two parts, and
// e^r ≈ 1 + r + r² · P(r) on |r| ≤ ln 2 / 2, within 2 ulp of the exact value. Inputs
// are clamped to [kExpMin, kExpMax] so that 2^n stays a normal float (n in [−126, 127]).
inline constexpr float kExpMax = 88.3762626647949f;
inline constexpr float kExpMin = -87.3365447504019f;
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kExpPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                      4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// scores[i] = e^(scale · scores[i] − m) / Σ_j e^(scale · scores[j] − m), m the largest
// scale · scores[j]; n >= 1 (decode_ops.cc's attention softmax).
void ScaledSoftmaxAvx2(float* scores, int64_t n, float scale);
void ScaledSoftmaxAvx512(float* scores, int64_t n, float scale);
void SwiGluAvx2(float* gate, const float* up, int64_t n);
void SwiGluAvx512(float* gate, const float* up, int64_t n);
float SumOfSquaresAvx2(const float* x, int64_t n);
float SumOfSquaresAvx512(const float* x, int64_t n);

}  // namespace qlorad::kernels::internal

#endif  // QLORAD_KERNELS_INTERNAL_DECODE_OPS_IMPL_H_
