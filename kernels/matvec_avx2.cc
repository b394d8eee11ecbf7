// AVX2+FMA bodies of kernels/matvec.h (same structure as matvec_avx512.cc with
// 8-wide vectors); the last in % 8 columns of a row are summed in scalar code.
#include <immintrin.h>

#include "kernels/internal/matvec_impl.h"

#define QLORAD_AVX2 __attribute__((target("avx2,fma")))

namespace qlorad::kernels::internal {
namespace {

constexpr int64_t kPrefetchFloats = 512;  // 2 KB ahead

QLORAD_AVX2 inline float HorizontalSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// As matvec_avx512.cc: one weight row against NB batch rows, U 8-float steps per
// iteration, rows in memory order with a software prefetch one cache line per two steps.
template <int NB, int U>
QLORAD_AVX2 void Row(const MatvecArgs& a, int64_t o) {
  __m256 acc[U][NB];
  #pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
    #pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[u][b] = _mm256_setzero_ps();
  const float* w = a.w + o * a.w_stride;
  int64_t i = 0;
  for (; i + 8 * U <= a.in; i += 8 * U) {
    #pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      if ((u & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(w + i + 8 * u + kPrefetchFloats), _MM_HINT_T0);
      const __m256 wv = _mm256_loadu_ps(w + i + 8 * u);
      #pragma GCC unroll 8
      for (int b = 0; b < NB; ++b)
        acc[u][b] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a.x + b * a.x_stride + i + 8 * u), acc[u][b]);
    }
  }
  for (; i + 8 <= a.in; i += 8) {
    const __m256 wv = _mm256_loadu_ps(w + i);
    #pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[0][b] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a.x + b * a.x_stride + i), acc[0][b]);
  }
  const float bias = a.bias != nullptr ? a.bias[o] : 0.0f;
  #pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    __m256 sum = acc[0][b];
    #pragma GCC unroll 8
    for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, acc[u][b]);
    float total = HorizontalSum(sum);
    for (int64_t j = i; j < a.in; ++j) total += w[j] * a.x[b * a.x_stride + j];
    a.y[b * a.y_stride + o] = total + bias;
  }
}

template <int NB>
QLORAD_AVX2 void Rows(const MatvecArgs& a) {
  constexpr int kUnroll = NB == 1 ? 4 : (NB == 2 ? 2 : 1);  // NB·U accumulators + NB x loads ≤ 16 ymm
  for (int64_t o = a.row_begin; o < a.row_end; ++o) Row<NB, kUnroll>(a, o);
}

}  // namespace

QLORAD_AVX2 void MatvecRowsAvx2(const MatvecArgs& a) {
  switch (a.batch) {
    case 1: return Rows<1>(a);
    case 2: return Rows<2>(a);
    case 3: return Rows<3>(a);
    case 4: return Rows<4>(a);
    case 5: return Rows<5>(a);
    case 6: return Rows<6>(a);
    case 7: return Rows<7>(a);
    default: return Rows<8>(a);
  }
}

QLORAD_AVX2 void WeightedRowSumAvx2(const float* m, int64_t rows, int64_t cols, int64_t m_stride, const float* p, float* out) {
  int64_t c = 0;
  for (; c + 8 <= cols; c += 8) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4)
      #pragma GCC unroll 8
      for (int k = 0; k < 4; ++k)
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(p[r + k]), _mm256_loadu_ps(m + (r + k) * m_stride + c), acc[k]);
    for (; r < rows; ++r) acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(p[r]), _mm256_loadu_ps(m + r * m_stride + c), acc[0]);
    _mm256_storeu_ps(out + c, _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  }
  for (; c < cols; ++c) {
    float sum = 0.0f;
    for (int64_t r = 0; r < rows; ++r) sum += p[r] * m[r * m_stride + c];
    out[c] = sum;
  }
}

}  // namespace qlorad::kernels::internal
