// AVX-512F bodies of kernels/matvec.h, compiled per function with
// __attribute__((target)) and only called when cpu_isa.h reports AVX-512.
// Each W vector loaded serves every batch row (x stays in L1); the tail of a row is a
// masked load. Measured on a 2-core EPYC (AVX-512), in = 768: walking one row at a time
// with a 2 KB software prefetch streams 24.6 GB/s on one core against 13.3 GB/s for four
// interleaved rows, whose short streams the hardware prefetcher kept restarting.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 bug 105593, as gemm4bit_avx512.cc
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "kernels/internal/matvec_impl.h"

#define QLORAD_AVX512 __attribute__((target("avx512f")))

namespace qlorad::kernels::internal {
namespace {

constexpr int64_t kPrefetchFloats = 512;  // 2 KB ahead

// _mm512_reduce_add_ps without GCC 12's uninitialized-register warning (bug 105593):
// through memory, once per output row.
QLORAD_AVX512 inline float HorizontalSum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  return sum;
}

// One weight row against NB batch rows, U 16-float steps per iteration (U·NB
// independent accumulators). Rows are walked in memory order, so the weights are one
// sequential stream; the prefetch runs kPrefetchFloats ahead, into the next row(s).
template <int NB, int U>
QLORAD_AVX512 void Row(const MatvecArgs& a, int64_t o) {
  __m512 acc[U][NB];
  #pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
    #pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[u][b] = _mm512_setzero_ps();
  const float* w = a.w + o * a.w_stride;
  int64_t i = 0;
  for (; i + 16 * U <= a.in; i += 16 * U) {
    #pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      _mm_prefetch(reinterpret_cast<const char*>(w + i + 16 * u + kPrefetchFloats), _MM_HINT_T0);
      const __m512 wv = _mm512_loadu_ps(w + i + 16 * u);
      #pragma GCC unroll 8
      for (int b = 0; b < NB; ++b)
        acc[u][b] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(a.x + b * a.x_stride + i + 16 * u), acc[u][b]);
    }
  }
  for (; i < a.in; i += 16) {
    const __mmask16 mask =
        a.in - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (a.in - i)) - 1);
    const __m512 wv = _mm512_maskz_loadu_ps(mask, w + i);
    #pragma GCC unroll 8
    for (int b = 0; b < NB; ++b)
      acc[0][b] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, a.x + b * a.x_stride + i), acc[0][b]);
  }
  const float bias = a.bias != nullptr ? a.bias[o] : 0.0f;
  #pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    __m512 sum = acc[0][b];
    #pragma GCC unroll 8
    for (int u = 1; u < U; ++u) sum = _mm512_add_ps(sum, acc[u][b]);
    a.y[b * a.y_stride + o] = HorizontalSum(sum) + bias;
  }
}

template <int NB>
QLORAD_AVX512 void Rows(const MatvecArgs& a) {
  constexpr int kUnroll = NB == 1 ? 4 : (NB == 2 ? 2 : 1);
  for (int64_t o = a.row_begin; o < a.row_end; ++o) Row<NB, kUnroll>(a, o);
}

}  // namespace

QLORAD_AVX512 void MatvecRowsAvx512(const MatvecArgs& a) {
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

// Four rows' products go to separate accumulators (independent FMA chains) and are
// added at the end of each 16-column slice.
QLORAD_AVX512 void WeightedRowSumAvx512(const float* m, int64_t rows, int64_t cols, int64_t m_stride, const float* p,
                                        float* out) {
  for (int64_t c = 0; c < cols; c += 16) {
    const __mmask16 mask =
        cols - c >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (cols - c)) - 1);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4)
      #pragma GCC unroll 8
      for (int k = 0; k < 4; ++k)
        acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(p[r + k]), _mm512_maskz_loadu_ps(mask, m + (r + k) * m_stride + c), acc[k]);
    for (; r < rows; ++r)
      acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(p[r]), _mm512_maskz_loadu_ps(mask, m + r * m_stride + c), acc[0]);
    const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_mask_storeu_ps(out + c, mask, sum);
  }
}

}  // namespace qlorad::kernels::internal
