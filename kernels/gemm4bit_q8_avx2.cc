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
// Software prefetch distance along the weight rows (one prefetch per 64-byte line).
constexpr int kPrefetchBytes = 4096;

// Weight rows [o, o + R) against batch rows [b0, b0 + NB): each x chunk loaded once
// serves R rows.
template <int NB, int R>
QLORAD_AVX2 void RowTile(const Packed4bitView& w, const Q8Input& x, __m256i book, int64_t o, int64_t b0,
                         const float* bias, float* y, int64_t ldy) {
  const int64_t in = x.in;
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256 acc[R][NB];
#pragma GCC unroll 2
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm256_setzero_ps();
  }
  for (int64_t c = 0; c < in / 64; ++c) {
    __m256i w_even[R], w_odd[R], abs_even[R], abs_odd[R];
    __m256 w_scale[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) {
      const uint8_t* row_bytes = w.packed.data() + (o + r) * in / 2 + 32 * c;
      if (c % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(row_bytes) + kPrefetchBytes, _MM_HINT_T0);
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row_bytes));
      w_even[r] = _mm256_shuffle_epi8(book, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_nibbles));
      w_odd[r] = _mm256_shuffle_epi8(book, _mm256_and_si256(bytes, low_nibbles));
      abs_even[r] = _mm256_sign_epi8(w_even[r], w_even[r]);
      abs_odd[r] = _mm256_sign_epi8(w_odd[r], w_odd[r]);
      w_scale[r] = _mm256_set1_ps(w.scales.Get(((o + r) * in + 64 * c) / w.blocksize) * (1.0f / 127.0f));
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      const int8_t* xq = x.values + (b0 + b) * in + 64 * c;
      const __m256i x_even = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
      const __m256i x_odd = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32));
      const __m256 x_scale = _mm256_loadu_ps(x.scales + ((b0 + b) * (in / 64) + c) * 8);
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) {
        const __m256i even =
            _mm256_madd_epi16(_mm256_maddubs_epi16(abs_even[r], _mm256_sign_epi8(x_even, w_even[r])), ones);
        const __m256i odd = _mm256_madd_epi16(_mm256_maddubs_epi16(abs_odd[r], _mm256_sign_epi8(x_odd, w_odd[r])), ones);
        acc[r][b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(even, odd)), _mm256_mul_ps(x_scale, w_scale[r]),
                                    acc[r][b]);
      }
    }
  }
#pragma GCC unroll 2
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b)
      y[(b0 + b) * ldy + o + r] = HorizontalSumAvx2(acc[r][b]) + (bias != nullptr ? bias[o + r] : 0.0f);
  }
}

// Pairs of weight rows for up to two batch rows (registers allow it), single rows beyond
// and for long rows (Q8SingleRowTiles; measured the same way for this body: [768, 2048]
// 12.4 → 14.1 GB/s, [4096, 4096] 11.4 → 14.4).
template <int NB>
QLORAD_AVX2 void Rows(const Packed4bitView& w, const Q8Input& x, __m256i book, int64_t o0, int64_t o1, int64_t b0,
                      const float* bias, float* y, int64_t ldy) {
  int64_t o = o0;
  if constexpr (NB <= 2) {
    if (!Q8SingleRowTiles(x.in)) {
      for (; o + 2 <= o1; o += 2) RowTile<NB, 2>(w, x, book, o, b0, bias, y, ldy);
    }
  }
  for (; o < o1; ++o) RowTile<NB, 1>(w, x, book, o, b0, bias, y, ldy);
}

}  // namespace

// As QuantizeQ8Scalar: the same max|x|, scale and inverse in fp32, x · inverse rounded by
// vcvtps2dq in the default rounding mode (to nearest, ties to even); the even/odd column
// split is done on the 64 int32 results of a chunk.
QLORAD_AVX2 void QuantizeQ8Avx2(const float* x, int64_t batch, int64_t in, int8_t* values, float* scales) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  alignas(32) int32_t rounded[64];
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < in / 64; ++c) {
      const float* src = x + b * in + 64 * c;
      float* chunk_scales = scales + (b * (in / 64) + c) * 8;
      for (int g = 0; g < 2; ++g) {
        __m256 v[4], max_abs = _mm256_setzero_ps();
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
          v[k] = _mm256_loadu_ps(src + 32 * g + 8 * k);
          max_abs = _mm256_max_ps(max_abs, _mm256_andnot_ps(sign, v[k]));
        }
        const float absmax = HorizontalMaxAvx2(max_abs);
        const float scale = absmax / 127.0f, inverse = absmax > 0.0f ? 127.0f / absmax : 0.0f;
        for (int i = 0; i < 4; ++i) chunk_scales[4 * g + i] = scale;
        const __m256 factor = _mm256_set1_ps(inverse);
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k)
          _mm256_store_si256(reinterpret_cast<__m256i*>(rounded + 32 * g + 8 * k),
                             _mm256_cvtps_epi32(_mm256_mul_ps(v[k], factor)));
      }
      int8_t* out = values + b * in + 64 * c;
      for (int i = 0; i < 32; ++i) {
        out[i] = static_cast<int8_t>(rounded[2 * i]);
        out[32 + i] = static_cast<int8_t>(rounded[2 * i + 1]);
      }
    }
  }
}

QLORAD_AVX2 void Q8RowsAvx2(const Packed4bitView& w, const Q8Input& x, const float* bias, float* y, int64_t ldy,
                            int64_t o0, int64_t o1) {
  const __m128i half = _mm_load_si128(reinterpret_cast<const __m128i*>(Int8CodeBook(w.type)));
  const __m256i book = _mm256_set_m128i(half, half);
  for (int64_t b0 = 0; b0 < x.batch; b0 += kMaxTileRows) {
    switch (std::min<int64_t>(kMaxTileRows, x.batch - b0)) {
      case 1: Rows<1>(w, x, book, o0, o1, b0, bias, y, ldy); break;
      case 2: Rows<2>(w, x, book, o0, o1, b0, bias, y, ldy); break;
      case 3: Rows<3>(w, x, book, o0, o1, b0, bias, y, ldy); break;
      default: Rows<4>(w, x, book, o0, o1, b0, bias, y, ldy); break;
    }
  }
}

}  // namespace qlorad::kernels::internal
