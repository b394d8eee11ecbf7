// AVX-512F body of the fused 4-bit matmul (gemm4bit.h), compiled per function with
// __attribute__((target)) and only called when cpu_isa.h reports AVX-512.
//
// One 32-weight group (16 packed bytes) costs one widening load, one shift and two
// 16-entry table lookups (vpermps reads only the low 4 bits of each index, so the low
// nibbles need no mask), then one FMA per half and batch row. The two halves hold the
// high and the low nibbles, so x is pre-split into even and odd values
// (PackTileXAvx512) and no interleaving is needed on the weight side. Several weight
// rows are decoded together so that each x load serves all of them.
// GCC 12's AVX-512 headers start some intrinsics from an "undefined" register and warn
// about it at every use (GCC bug 105593, fixed in GCC 13): silence only those lines.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>

#include "kernels/internal/quant4bit_impl.h"

#define QLORAD_AVX512 __attribute__((target("avx512f")))

namespace qlorad::kernels::internal {
namespace {

constexpr int kScalesAtOnce = 16;

// The scales s.Get(first + i), i < count (<= 16), bit for bit: the plain absmax in place,
// or double-quantized ones decoded into buf. Sixteen of those take two gathers instead of
// sixteen chains of dependent loads.
QLORAD_AVX512 inline const float* DecodeScales(const AbsmaxView& s, int64_t first, int count,
                                               float* buf) {
  const int64_t nbs = s.nested_blocksize;
  if (!s.nested()) return s.absmax.data() + first;
  if (count < kScalesAtOnce || (nbs & (nbs - 1)) != 0) {
    for (int i = 0; i < count; ++i) buf[i] = s.Get(first + i);
    return buf;
  }
  const __m512i codes = _mm512_cvtepu8_epi32(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.codes.data() + first)));
  const __m512 code_values = _mm512_i32gather_ps(codes, s.nested_code.data(), 4);
  // Nested group of each block, relative to the first block's group (< 2^31 apart).
  const int shift = __builtin_ctzll(static_cast<uint64_t>(nbs));
  const int64_t group0 = first >> shift;
  const __m512i lanes =
      _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first - (group0 << shift))),
                       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m512i groups = _mm512_srlv_epi32(lanes, _mm512_set1_epi32(shift));
  const __m512 nested = _mm512_i32gather_ps(groups, s.nested_absmax.data() + group0, 4);
  const __m512 product = _mm512_mul_ps(code_values, nested);
  _mm512_storeu_ps(buf, _mm512_add_ps(product, _mm512_set1_ps(s.offset)));
  return buf;
}

// R weight rows x NB batch rows at once: each x vector loaded serves R rows (x is
// re-read from L1/L2 once per R rows, not once per row). The even and odd halves of a
// group go to separate accumulators only when R * NB is small, so that at least eight
// independent FMA chains hide the FMA latency. Rows [o, o + R) of the tile.
template <int NB, int R>
QLORAD_AVX512 void GemmRowBlock(const Packed4bitView& w, int64_t in, const GemmTile& t,
                                int64_t o) {
  constexpr int kHalves = R * NB < 8 ? 2 : 1;
  const __m512 code = _mm512_loadu_ps(CodeOf(w.type));
  const int64_t bs = w.blocksize;  // a power of two >= 32
  const int64_t blocks_per_row = in / bs;
  __m512 acc[R][NB][kHalves];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
#pragma GCC unroll 2
      for (int h = 0; h < kHalves; ++h) acc[r][b][h] = _mm512_setzero_ps();
    }
  }
  const uint8_t* rows = w.packed.data() + o * (in / 2);
  for (int64_t k16 = 0; k16 < blocks_per_row; k16 += kScalesAtOnce) {
    const int count = static_cast<int>(std::min<int64_t>(kScalesAtOnce, blocks_per_row - k16));
    alignas(64) float buf[R][kScalesAtOnce];
    const float* scales[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      scales[r] = DecodeScales(w.scales, (o + r) * blocks_per_row + k16, count, buf[r]);
    }
    for (int kk = 0; kk < count; ++kk) {
      __m512 scaled[R];  // the code book times each row's block absmax
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) scaled[r] = _mm512_mul_ps(code, _mm512_set1_ps(scales[r][kk]));
      const int64_t j0 = (k16 + kk) * bs;
      for (int64_t j = j0; j < j0 + bs; j += kGemmGroup) {
        __m512 w_even[R], w_odd[R];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const __m512i bytes = _mm512_cvtepu8_epi32(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows + r * (in / 2) + j / 2)));
          w_even[r] = _mm512_permutexvar_ps(_mm512_srli_epi32(bytes, 4), scaled[r]);
          w_odd[r] = _mm512_permutexvar_ps(bytes, scaled[r]);
        }
        const float* xg = t.x + j * NB;  // group j / 32 of the packed x
#pragma GCC unroll 8
        for (int b = 0; b < NB; ++b) {
          const __m512 x_even = _mm512_loadu_ps(xg + b * kGemmGroup);
          const __m512 x_odd = _mm512_loadu_ps(xg + b * kGemmGroup + 16);
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r) {
            acc[r][b][0] = _mm512_fmadd_ps(w_even[r], x_even, acc[r][b][0]);
            acc[r][b][kHalves - 1] = _mm512_fmadd_ps(w_odd[r], x_odd, acc[r][b][kHalves - 1]);
          }
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      __m512 v = acc[r][b][0];
      if constexpr (kHalves == 2) v = _mm512_add_ps(v, acc[r][b][1]);
      t.y[b * t.ldy + o + r] = _mm512_reduce_add_ps(v) + (t.bias ? t.bias[o + r] : 0.0f);
    }
  }
}

// Blocks of kRows weight rows (4 for up to 2 batch rows, else 2: accumulators, decoded
// vectors and scaled code books stay within the 32 registers), then single rows.
template <int NB>
QLORAD_AVX512 void GemmTileNb(const Packed4bitView& w, int64_t in, const GemmTile& t) {
  constexpr int kRows = NB <= 2 ? 4 : 2;
  int64_t o = t.o0;
  for (; o + kRows <= t.o1; o += kRows) GemmRowBlock<NB, kRows>(w, in, t, o);
  for (; o < t.o1; ++o) GemmRowBlock<NB, 1>(w, in, t, o);
}

}  // namespace

QLORAD_AVX512 void PackTileXAvx512(const float* x, int64_t ldx, int nb, int64_t in,
                                   float* packed) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t g = 0; g < in / kGemmGroup; ++g) {
    for (int b = 0; b < nb; ++b) {
      const float* src = x + b * ldx + g * kGemmGroup;
      float* dst = packed + (g * nb + b) * kGemmGroup;
      const __m512 a = _mm512_loadu_ps(src);
      const __m512 c = _mm512_loadu_ps(src + 16);
      _mm512_storeu_ps(dst, _mm512_permutex2var_ps(a, even, c));
      _mm512_storeu_ps(dst + 16, _mm512_permutex2var_ps(a, odd, c));
    }
  }
}

void GemmTileAvx512(const Packed4bitView& w, int64_t in, const GemmTile& t) {
  static constexpr GemmTileFn kByRows[kGemmTileRows] = {
      GemmTileNb<1>, GemmTileNb<2>, GemmTileNb<3>, GemmTileNb<4>,
      GemmTileNb<5>, GemmTileNb<6>, GemmTileNb<7>, GemmTileNb<8>};
  kByRows[t.nb - 1](w, in, t);
}

}  // namespace qlorad::kernels::internal
