// AVX2 + FMA bodies of kernels/decode_ops.h, compiled per function with
// __attribute__((target)) and only called when cpu_isa.h reports AVX2.
#include <immintrin.h>

#include <cmath>

#include "kernels/internal/avx2_util.h"
#include "kernels/internal/decode_ops_impl.h"

#define QLORAD_AVX2 __attribute__((target("avx2,fma")))

namespace qlorad::kernels::internal {
namespace {

// e^x per lane (decode_ops_impl.h: Cephes' expf, clamped input).
QLORAD_AVX2 inline __m256 Exp(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpMin)), _mm256_set1_ps(kExpMax));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpPoly[i]));
  const __m256 e_r = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(e_r, _mm256_castsi256_ps(bits));
}

QLORAD_AVX2 inline __m256i TailMask(int64_t left) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)), lanes);
}

}  // namespace

QLORAD_AVX2 void SwiGluAvx2(float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i mask = TailMask(n - i);
    const __m256 g = _mm256_maskload_ps(gate + i, mask);
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, Exp(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_maskstore_ps(gate + i, mask, _mm256_mul_ps(silu, _mm256_maskload_ps(up + i, mask)));
  }
}

QLORAD_AVX2 void ScaledSoftmaxAvx2(float* scores, int64_t n, float scale) {
  const __m256 s = _mm256_set1_ps(scale), lowest = _mm256_set1_ps(-INFINITY);
  __m256 high = lowest;
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i mask = TailMask(n - i);
    const __m256 x = _mm256_mul_ps(_mm256_maskload_ps(scores + i, mask), s);
    high = _mm256_max_ps(high, _mm256_blendv_ps(lowest, x, _mm256_castsi256_ps(mask)));
  }
  const __m256 top = _mm256_set1_ps(HorizontalMaxAvx2(high));
  __m256 total = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i mask = TailMask(n - i);
    const __m256 e = _mm256_and_ps(Exp(_mm256_sub_ps(_mm256_mul_ps(_mm256_maskload_ps(scores + i, mask), s), top)),
                                   _mm256_castsi256_ps(mask));
    _mm256_maskstore_ps(scores + i, mask, e);
    total = _mm256_add_ps(total, e);
  }
  const __m256 inverse = _mm256_set1_ps(1.0f / HorizontalSumAvx2(total));
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i mask = TailMask(n - i);
    _mm256_maskstore_ps(scores + i, mask, _mm256_mul_ps(_mm256_maskload_ps(scores + i, mask), inverse));
  }
}

QLORAD_AVX2 float SumOfSquaresAvx2(const float* x, int64_t n) {
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    acc[0] = _mm256_fmadd_ps(a, a, acc[0]);
    acc[1] = _mm256_fmadd_ps(b, b, acc[1]);
  }
  for (; i < n; i += 8) {
    const __m256 a = _mm256_maskload_ps(x + i, TailMask(n - i));
    acc[0] = _mm256_fmadd_ps(a, a, acc[0]);
  }
  return HorizontalSumAvx2(_mm256_add_ps(acc[0], acc[1]));
}

}  // namespace qlorad::kernels::internal
