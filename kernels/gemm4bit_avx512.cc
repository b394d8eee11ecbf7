// AVX-512F body of the fused 4-bit matmul (gemm4bit.h), compiled per function with
// __attribute__((target)) and only called when cpu_isa.h reports AVX-512.
//
// One 32-weight group (16 packed bytes) costs one widening load, one shift and two
// 16-entry table lookups (vpermps reads only the low 4 bits of each index, so the low
// nibbles need no mask), then one FMA per half and batch row. The two halves hold the
// high and the low nibbles, so x is pre-split into even and odd values
// (SplitEvenOddAvx512) and no interleaving is needed on the weight side.
// GCC 12's AVX-512 headers start some intrinsics from an "undefined" register and warn
// about it at every use (GCC bug 105593, fixed in GCC 13): silence only those lines.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "kernels/internal/quant4bit_impl.h"

#define QLORAD_AVX512 __attribute__((target("avx512f")))

namespace qlorad::kernels::internal {
namespace {

constexpr int64_t kGroup = 32;  // weights per decoded group

// Accumulates one group for NB batch rows: hi[b] += W[even] * x[even], lo[b] += W[odd] * x[odd].
template <int NB>
QLORAD_AVX512 inline void AccumulateGroup(const uint8_t* packed, __m512 scaled_code,
                                          const float* xs, int64_t ldx, __m512 (&hi)[NB],
                                          __m512 (&lo)[NB]) {
  const __m512i bytes =
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed)));
  const __m512 w_even = _mm512_permutexvar_ps(_mm512_srli_epi32(bytes, 4), scaled_code);
  const __m512 w_odd = _mm512_permutexvar_ps(bytes, scaled_code);
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    hi[b] = _mm512_fmadd_ps(w_even, _mm512_loadu_ps(xs + b * ldx), hi[b]);
    lo[b] = _mm512_fmadd_ps(w_odd, _mm512_loadu_ps(xs + b * ldx + 16), lo[b]);
  }
}

// NB batch rows at once. With one row, alternate groups go to a second set of
// accumulators so four FMA chains hide the FMA latency.
template <int NB>
QLORAD_AVX512 void GemmTileNb(const Packed4bitView& w, int64_t in, const GemmTile& t) {
  constexpr int kSets = NB == 1 ? 2 : 1;
  const __m512 code = _mm512_loadu_ps(CodeOf(w.type));
  const int64_t bs = w.blocksize;  // a power of two >= 32
  const int64_t blocks_per_row = in / bs;
  for (int64_t o = t.o0; o < t.o1; ++o) {
    __m512 hi[kSets][NB], lo[kSets][NB];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
#pragma GCC unroll 2
      for (int s = 0; s < kSets; ++s) hi[s][b] = lo[s][b] = _mm512_setzero_ps();
    }
    const uint8_t* row = w.packed.data() + o * (in / 2);
    for (int64_t k = t.k0; k < t.k1; ++k) {
      const __m512 scaled =
          _mm512_mul_ps(code, _mm512_set1_ps(w.scales.Get(o * blocks_per_row + k)));
      int64_t j = k * bs;
      const int64_t end = j + bs;
      if constexpr (kSets == 2) {
        for (; j + 2 * kGroup <= end; j += 2 * kGroup) {
          AccumulateGroup<NB>(row + j / 2, scaled, t.x + j, t.ldx, hi[0], lo[0]);
          AccumulateGroup<NB>(row + j / 2 + kGroup / 2, scaled, t.x + j + kGroup, t.ldx,
                              hi[kSets - 1], lo[kSets - 1]);
        }
      }
      for (; j < end; j += kGroup) {
        AccumulateGroup<NB>(row + j / 2, scaled, t.x + j, t.ldx, hi[0], lo[0]);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      __m512 sum = _mm512_add_ps(hi[0][b], lo[0][b]);
      if constexpr (kSets == 2) sum = _mm512_add_ps(sum, _mm512_add_ps(hi[1][b], lo[1][b]));
      float& out = t.y[b * t.ldy + o];
      out = (t.accumulate ? out : 0.0f) + _mm512_reduce_add_ps(sum) + (t.bias ? t.bias[o] : 0.0f);
    }
  }
}

}  // namespace

QLORAD_AVX512 void SplitEvenOddAvx512(const float* x, int64_t ldx, int64_t batch, int64_t in,
                                      float* xs) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t b = 0; b < batch; ++b) {
    const float* src = x + b * ldx;
    float* dst = xs + b * in;
    for (int64_t i = 0; i < in; i += kGroup) {
      const __m512 a = _mm512_loadu_ps(src + i);
      const __m512 c = _mm512_loadu_ps(src + i + 16);
      _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, even, c));
      _mm512_storeu_ps(dst + i + 16, _mm512_permutex2var_ps(a, odd, c));
    }
  }
}

void GemmTileAvx512(const Packed4bitView& w, int64_t in, const GemmTile& t) {
  using TileFn = void (*)(const Packed4bitView&, int64_t, const GemmTile&);
  static constexpr TileFn kByRows[kGemmTileRows] = {GemmTileNb<1>, GemmTileNb<2>, GemmTileNb<3>,
                                                    GemmTileNb<4>, GemmTileNb<5>, GemmTileNb<6>,
                                                    GemmTileNb<7>, GemmTileNb<8>};
  kByRows[t.nb - 1](w, in, t);
}

}  // namespace qlorad::kernels::internal
