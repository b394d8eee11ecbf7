// Internal: small AVX2 helpers shared by the kernels' AVX2 files. Each carries its own
// target attribute, so callers must run them only where cpu_isa.h reports AVX2.
#ifndef QLORAD_KERNELS_INTERNAL_AVX2_UTIL_H_
#define QLORAD_KERNELS_INTERNAL_AVX2_UTIL_H_

#include <immintrin.h>

namespace qlorad::kernels::internal {

// v[0] + ... + v[7].
__attribute__((target("avx2,fma"))) inline float HorizontalSumAvx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// max(v[0], ..., v[7]).
__attribute__((target("avx2,fma"))) inline float HorizontalMaxAvx2(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

}  // namespace qlorad::kernels::internal

#endif  // QLORAD_KERNELS_INTERNAL_AVX2_UTIL_H_
