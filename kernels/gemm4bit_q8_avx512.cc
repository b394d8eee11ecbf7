// AVX-512 VNNI body of the 8-bit-activation 4-bit matmul (gemm4bit_q8.h), compiled per
// function with __attribute__((target)) and only called where Avx512VnniSupported().
//
// One zmm holds two 64-weight chunks (64 packed bytes). The code book is looked up with
// vpshufb as unsigned bytes, book + 128 in [1, 255], so that vpdpbusd (u8 × s8, four
// products summed into each int32 lane, exact) multiplies them with the signed int8 x:
//   Σ (w + 128) · x = Σ w · x + 128 · Σ x.
// The correction 128 · Σ x depends on x alone: computed once per call for every chunk
// pair (vpdpbusd of 0x80 bytes with x, PrepareXPairs, with x's halves and scales) and used,
// negated, as the starting accumulator of every row. Lanes
// 0–3, 4–7, 8–11, 12–15 hold the groups s0, s1 of chunk c and s0, s1 of chunk c + 1, the
// layout of Q8Input's scales, so 16 consecutive floats scale the pair.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 bug 105593, as gemm4bit_avx512.cc
#pragma GCC diagnostic ignored "-Wuninitialized"        // the same bug, in _mm512_broadcast_i32x4
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <vector>

#include "kernels/internal/gemm4bit_q8_impl.h"

#define QLORAD_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

namespace qlorad::kernels::internal {
namespace {

constexpr int kMaxTileRows = 4;
constexpr int kPrefetchBytes = 4096;

// The packed weight bytes of chunks c and c + 1 of a row, or of chunk c alone with zeros
// above when `pair` is false. 64 bytes either way.
QLORAD_AVX512_VNNI inline __m512i LoadChunks(const void* p, bool pair) {
  return pair ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(0xFFFFFFFFull, p);
}

// x's side of chunks c and c + 1 for one batch row, shared by every weight row: its even
// and odd values, the starting accumulator -128 · Σ x (see the file comment) and the two
// groups' scales divided by 127 (the code book's scale).
struct alignas(64) XPair {
  __m512i even, odd, start;
  __m512 scale;
};

// x's even (or odd) values of chunks c and c + 1: 32 bytes at p and 32 at p + 64.
QLORAD_AVX512_VNNI inline __m512i LoadXHalves(const int8_t* p, bool pair) {
  const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i high = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64)) : _mm256_setzero_si256();
  return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}

// pairs[b · PairsPerRow + c / 2] for every batch row b and even chunk c.
inline int64_t PairsPerRow(int64_t in) { return (in / 64 + 1) / 2; }

QLORAD_AVX512_VNNI void PrepareXPairs(const Q8Input& x, XPair* pairs) {
  const int64_t chunks = x.in / 64;
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < x.batch; ++b) {
    for (int64_t c = 0; c < chunks; c += 2) {
      const bool pair = c + 1 < chunks;
      const int8_t* xq = x.values + b * x.in + 64 * c;
      XPair& p = pairs[b * PairsPerRow(x.in) + c / 2];
      p.even = LoadXHalves(xq, pair);
      p.odd = LoadXHalves(xq + 32, pair);
      const __m512i sum128 =
          _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, p.even), offset, p.odd);
      p.start = _mm512_sub_epi32(_mm512_setzero_si512(), sum128);
      const float* scale = x.scales + (b * chunks + c) * 8;
      p.scale = _mm512_mul_ps(pair ? _mm512_loadu_ps(scale) : _mm512_maskz_loadu_ps(0x00FF, scale),
                              _mm512_set1_ps(1.0f / 127.0f));
    }
  }
}

// The code book entries (+ 128) of the high (even columns) and low (odd columns) nibbles
// of 64 packed bytes. (vpermb would save the two masks but needs AVX512_VBMI, which some
// VNNI CPUs lack; measured within noise on the decode, tests/bench/RESULTS.md.)
QLORAD_AVX512_VNNI inline void LookUp(__m512i bytes, __m512i book, __m512i& even, __m512i& odd) {
  const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
  even = _mm512_shuffle_epi8(book, _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low_nibbles));
  odd = _mm512_shuffle_epi8(book, _mm512_and_si512(bytes, low_nibbles));
}

// The weight scales of chunks c and c + 1 of the row starting at element `first`, each
// over 8 lanes (the code book's 1/127 is in XPair::scale). kPlain64: plain fp32 absmax in
// blocks of 64, two consecutive floats; otherwise any scale form through Get().
template <bool kPlain64>
QLORAD_AVX512_VNNI inline __m512 WeightScales(const Packed4bitView& w, int64_t first, bool pair) {
  if constexpr (kPlain64) {
    const __m512 two = _mm512_maskz_loadu_ps(pair ? 0x3 : 0x1, w.scales.absmax.data() + first / 64);
    const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(spread, two);
  } else {
    const float s0 = w.scales.Get(first / w.blocksize);
    const float s1 = pair ? w.scales.Get((first + 64) / w.blocksize) : 0.0f;
    return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
  }
}

// Weight rows [o, o + R) against batch rows [b0, b0 + NB).
template <bool kPlain64, int NB, int R>
QLORAD_AVX512_VNNI void RowTile(const Packed4bitView& w, const Q8Input& x, const XPair* pairs, __m512i book,
                                int64_t o, int64_t b0, const float* bias, float* y, int64_t ldy) {
  const int64_t in = x.in, chunks = in / 64, pairs_per_row = PairsPerRow(in);
  __m512 acc[R][NB];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < chunks; c += 2) {
    const bool pair = c + 1 < chunks;
    __m512i w_even[R], w_odd[R];
    __m512 w_scale[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const int64_t first = (o + r) * in + 64 * c;
      _mm_prefetch(reinterpret_cast<const char*>(w.packed.data() + first / 2) + kPrefetchBytes, _MM_HINT_T0);
      const __m512i bytes = LoadChunks(w.packed.data() + first / 2, pair);
      LookUp(bytes, book, w_even[r], w_odd[r]);
      w_scale[r] = WeightScales<kPlain64>(w, first, pair);
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      const XPair& p = pairs[(b0 + b) * pairs_per_row + c / 2];
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m512i sums = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(p.start, w_even[r], p.even), w_odd[r], p.odd);
        acc[r][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(p.scale, w_scale[r]), acc[r][b]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b)
      y[(b0 + b) * ldy + o + r] = _mm512_reduce_add_ps(acc[r][b]) + (bias != nullptr ? bias[o + r] : 0.0f);
  }
}

// Four weight rows per x load for up to two batch rows, two for three or four (the tile's
// accumulators and weights must stay in the 32 registers), one for the remainder and for
// long rows (Q8SingleRowTiles).
template <bool kPlain64, int NB>
QLORAD_AVX512_VNNI void Rows(const Packed4bitView& w, const Q8Input& x, const XPair* pairs, __m512i book,
                             int64_t o0, int64_t o1, int64_t b0, const float* bias, float* y, int64_t ldy) {
  int64_t o = o0;
  if (!Q8SingleRowTiles(x.in)) {
    if constexpr (NB <= 2) {
      for (; o + 4 <= o1; o += 4) RowTile<kPlain64, NB, 4>(w, x, pairs, book, o, b0, bias, y, ldy);
    }
    for (; o + 2 <= o1; o += 2) RowTile<kPlain64, NB, 2>(w, x, pairs, book, o, b0, bias, y, ldy);
  }
  for (; o < o1; ++o) RowTile<kPlain64, NB, 1>(w, x, pairs, book, o, b0, bias, y, ldy);
}

template <bool kPlain64>
QLORAD_AVX512_VNNI void AllRows(const Packed4bitView& w, const Q8Input& x, const XPair* pairs, __m512i book,
                                int64_t o0, int64_t o1, const float* bias, float* y, int64_t ldy) {
  for (int64_t b0 = 0; b0 < x.batch; b0 += kMaxTileRows) {
    switch (std::min<int64_t>(kMaxTileRows, x.batch - b0)) {
      case 1: Rows<kPlain64, 1>(w, x, pairs, book, o0, o1, b0, bias, y, ldy); break;
      case 2: Rows<kPlain64, 2>(w, x, pairs, book, o0, o1, b0, bias, y, ldy); break;
      case 3: Rows<kPlain64, 3>(w, x, pairs, book, o0, o1, b0, bias, y, ldy); break;
      default: Rows<kPlain64, 4>(w, x, pairs, book, o0, o1, b0, bias, y, ldy); break;
    }
  }
}

}  // namespace

QLORAD_AVX512_VNNI void Q8RowsAvx512Vnni(const Packed4bitView& w, const Q8Input& x, const float* bias, float* y,
                                         int64_t ldy, int64_t o0, int64_t o1) {
  const __m128i table = _mm_load_si128(reinterpret_cast<const __m128i*>(Int8CodeBook(w.type)));
  const __m512i book = _mm512_broadcast_i32x4(_mm_add_epi8(table, _mm_set1_epi8(static_cast<char>(0x80))));
  // Per thread, grown to the largest x seen: no allocation once decoding runs.
  thread_local std::vector<XPair> pairs;
  const size_t needed = static_cast<size_t>(x.batch * PairsPerRow(x.in));
  if (pairs.size() < needed) pairs.resize(needed);
  PrepareXPairs(x, pairs.data());
  if (!w.scales.nested() && w.blocksize == 64) {
    AllRows<true>(w, x, pairs.data(), book, o0, o1, bias, y, ldy);
  } else {
    AllRows<false>(w, x, pairs.data(), book, o0, o1, bias, y, ldy);
  }
}

}  // namespace qlorad::kernels::internal
