// AVX-512F bodies of kernels/decode_ops.h, compiled per function with
// __attribute__((target)) and only called when cpu_isa.h reports AVX-512.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 bug 105593, as gemm4bit_avx512.cc
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cmath>

#include "kernels/internal/decode_ops_impl.h"

#define QLORAD_AVX512 __attribute__((target("avx512f")))

namespace qlorad::kernels::internal {
namespace {

// e^x per lane (decode_ops_impl.h: Cephes' expf, clamped input).
QLORAD_AVX512 inline __m512 Exp(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpMin)), _mm512_set1_ps(kExpMax));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpPoly[i]));
  const __m512 e_r = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(e_r, _mm512_castsi512_ps(bits));
}

// The lanes of a 16-float vector that hold one of the `left` values still to do.
QLORAD_AVX512 inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

}  // namespace

QLORAD_AVX512 void SwiGluAvx512(float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = TailMask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(mask, gate + i);
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, Exp(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(gate + i, mask, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(mask, up + i)));
  }
}

QLORAD_AVX512 void ScaledSoftmaxAvx512(float* scores, int64_t n, float scale) {
  const __m512 s = _mm512_set1_ps(scale);
  __m512 high = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = TailMask(n - i);
    high = _mm512_mask_max_ps(high, mask, high, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, scores + i), s));
  }
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(high));
  __m512 total = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = TailMask(n - i);
    const __m512 e = Exp(_mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, scores + i), s), top));
    _mm512_mask_storeu_ps(scores + i, mask, e);
    total = _mm512_mask_add_ps(total, mask, total, e);
  }
  const __m512 inverse = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(total));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = TailMask(n - i);
    _mm512_mask_storeu_ps(scores + i, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, scores + i), inverse));
  }
}

QLORAD_AVX512 float SumOfSquaresAvx512(const float* x, int64_t n) {
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
    acc[0] = _mm512_fmadd_ps(a, a, acc[0]);
    acc[1] = _mm512_fmadd_ps(b, b, acc[1]);
  }
  for (; i < n; i += 16) {
    const __mmask16 mask = TailMask(n - i);
    const __m512 a = _mm512_maskz_loadu_ps(mask, x + i);
    acc[0] = _mm512_fmadd_ps(a, a, acc[0]);
  }
  // Through memory: _mm512_reduce_add_ps here draws GCC 12's bug-105593 warning.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(acc[0], acc[1]));
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  return sum;
}

}  // namespace qlorad::kernels::internal
