// AVX2 body of the 8-bit-activation 4-bit matmul (gemm4bit_q8.h), compiled per function
// with __attribute__((target)) and only called when cpu_isa.h reports AVX2 or better.
//
// A 64-weight chunk is 32 packed bytes, one load. The high nibbles (even columns) and
// the low ones (odd columns) index the int8 code book with vpshufb (16 entries: exactly
// one lookup each). Signed × signed products go through vpmaddubsw as |w| × (x · sign w),
// pairs summed to int16 (|sum| <= 2 · 127 · 127, no saturation), then vpmaddwd to int32.
// The low 128 bits hold the chunk's first 32-value group, the high ones its second, so
// one fp32 vector [s0 ×4, s1 ×4] scales both.
#include <immintrin.h>

#include <algorithm>

#include "kernels/internal/avx2_util.h"
#include "kernels/internal/gemm4bit_q8_impl.h"

#define QLORAD_AVX2 __attribute__((target("avx2,fma")))

namespace qlorad::kernels::internal {
namespace {

constexpr int kMaxTileRows = 4;

// Weight row o against batch rows [b0, b0 + NB).
template <int NB>
QLORAD_AVX2 void RowTile(const Packed4bitView& w, const Q8Input& x, __m256i book, int64_t o, int64_t b0,
                         const float* bias, float* y, int64_t ldy) {
  const int64_t in = x.in, groups = in / kQ8Group;
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const uint8_t* row = w.packed.data() + o * in / 2;
  __m256 acc[NB];
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) acc[b] = _mm256_setzero_ps();
  for (int64_t c = 0; c < in / 64; ++c) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * c));
    const __m256i w_even = _mm256_shuffle_epi8(book, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_nibbles));
    const __m256i w_odd = _mm256_shuffle_epi8(book, _mm256_and_si256(bytes, low_nibbles));
    const __m256i abs_even = _mm256_sign_epi8(w_even, w_even), abs_odd = _mm256_sign_epi8(w_odd, w_odd);
    const __m256 w_scale = _mm256_set1_ps(w.scales.Get((o * in + 64 * c) / w.blocksize) * (1.0f / 127.0f));
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      const int8_t* xq = x.values + (b0 + b) * in + 64 * c;
      const __m256i x_even = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
      const __m256i x_odd = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32));
      const __m256i even = _mm256_madd_epi16(_mm256_maddubs_epi16(abs_even, _mm256_sign_epi8(x_even, w_even)), ones);
      const __m256i odd = _mm256_madd_epi16(_mm256_maddubs_epi16(abs_odd, _mm256_sign_epi8(x_odd, w_odd)), ones);
      const float* xs = x.scales + (b0 + b) * groups + 2 * c;
      const __m256 x_scale = _mm256_set_m128(_mm_set1_ps(xs[1]), _mm_set1_ps(xs[0]));
      acc[b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(even, odd)), _mm256_mul_ps(x_scale, w_scale),
                               acc[b]);
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b)
    y[(b0 + b) * ldy + o] = HorizontalSumAvx2(acc[b]) + (bias != nullptr ? bias[o] : 0.0f);
}

}  // namespace

QLORAD_AVX2 void Q8RowsAvx2(const Packed4bitView& w, const Q8Input& x, const float* bias, float* y, int64_t ldy,
                            int64_t o0, int64_t o1) {
  alignas(16) int8_t table[16];
  Int8CodeBook(w.type, table);
  const __m128i half = _mm_load_si128(reinterpret_cast<const __m128i*>(table));
  const __m256i book = _mm256_set_m128i(half, half);
  for (int64_t o = o0; o < o1; ++o) {
    for (int64_t b0 = 0; b0 < x.batch; b0 += kMaxTileRows) {
      switch (std::min<int64_t>(kMaxTileRows, x.batch - b0)) {
        case 1: RowTile<1>(w, x, book, o, b0, bias, y, ldy); break;
        case 2: RowTile<2>(w, x, book, o, b0, bias, y, ldy); break;
        case 3: RowTile<3>(w, x, book, o, b0, bias, y, ldy); break;
        default: RowTile<4>(w, x, book, o, b0, bias, y, ldy); break;
      }
    }
  }
}

}  // namespace qlorad::kernels::internal
