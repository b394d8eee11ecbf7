// AVX2 + FMA bodies of the 4-bit kernels, compiled per function with
// __attribute__((target)) and only called when the CPU supports them. Quantize and
// dequantize are bit-identical to the scalar versions (same fp32 operations, no FMA
// contraction: the kernels library is built with -ffp-contract=off).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/bf16.h"
#include "kernels/internal/avx2_util.h"
#include "kernels/internal/quant4bit_impl.h"
#include "kernels/quant_tables.h"

#define QLORAD_AVX2 __attribute__((target("avx2,fma")))

namespace qlorad::kernels::internal {
namespace {

QLORAD_AVX2 inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
QLORAD_AVX2 inline __m256 Load8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline float Load1(const float* p) { return *p; }
inline float Load1(const uint16_t* p) { return Bf16ToFloat(*p); }

// Code index of 8 scaled values: the number of thresholds each value exceeds.
QLORAD_AVX2 inline __m256i IndexNf4(__m256 s) {
  __m256i idx = _mm256_setzero_si256();
  for (int k = 0; k < 15; ++k) {
    const __m256 gt = _mm256_cmp_ps(s, _mm256_set1_ps(kNf4Thresholds[k]), _CMP_GT_OQ);
    idx = _mm256_sub_epi32(idx, _mm256_castps_si256(gt));
  }
  return idx;
}

QLORAD_AVX2 inline __m256i IndexFp4(__m256 s) {
  const __m256 neg = _mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), s);
  __m256i rank = _mm256_setzero_si256();
  for (int k = 0; k < 7; ++k) {
    const __m256 gt = _mm256_cmp_ps(a, _mm256_set1_ps(kFp4Thresholds[k]), _CMP_GT_OQ);
    rank = _mm256_sub_epi32(rank, _mm256_castps_si256(gt));
  }
  const __m256i table = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kFp4RankToCode));
  const __m256i code = _mm256_permutevar8x32_epi32(table, rank);
  return _mm256_or_si256(code, _mm256_and_si256(_mm256_castps_si256(neg), _mm256_set1_epi32(8)));
}

// Packs 16 indices (a = elements 0..7, b = 8..15) into 8 bytes, high nibble first.
QLORAD_AVX2 inline void Pack16(__m256i a, __m256i b, uint8_t* out) {
  const __m256i shift = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0);
  __m256i h = _mm256_hadd_epi32(_mm256_sllv_epi32(a, shift), _mm256_sllv_epi32(b, shift));
  h = _mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
  const __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(p16, p16));
}

inline uint8_t QuantizeOne(QuantType type, float s) {
  if (type == QuantType::kNF4) {
    int idx = 0;
    for (float t : kNf4Thresholds) idx += (s > t) ? 1 : 0;
    return static_cast<uint8_t>(idx);
  }
  const int sign = s < 0.0f ? 0b1000 : 0;
  const float a = std::fabs(s);
  int rank = 0;
  for (float t : kFp4Thresholds) rank += (a > t) ? 1 : 0;
  return static_cast<uint8_t>(kFp4RankToCode[rank] + sign);
}

template <typename T>
QLORAD_AVX2 void QuantizeBlocksImpl(QuantType type, const T* x, int64_t n, int64_t blocksize,
                                    int64_t b0, int64_t b1, uint8_t* packed, float* absmax) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t begin = b * blocksize;
    const int64_t end = std::min(n, begin + blocksize);
    const int64_t vec_end = begin + ((end - begin) & ~int64_t{15});
    // absmax; max_ps(v, acc) returns acc when v is NaN, like fmaxf.
    __m256 vmax = _mm256_setzero_ps();
    for (int64_t i = begin; i + 8 <= end; i += 8)
      vmax = _mm256_max_ps(_mm256_and_ps(Load8(x + i), abs_mask), vmax);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    float amax = 0.0f;
    for (float v : lanes) amax = std::fmax(amax, v);
    for (int64_t i = begin + ((end - begin) & ~int64_t{7}); i < end; ++i)
      amax = std::fmax(amax, std::fabs(Load1(x + i)));
    absmax[b] = amax;
    const float recip = 1.0f / amax;
    const __m256 vrecip = _mm256_set1_ps(recip);
    for (int64_t i = begin; i < vec_end; i += 16) {
      const __m256 s0 = _mm256_mul_ps(Load8(x + i), vrecip);
      const __m256 s1 = _mm256_mul_ps(Load8(x + i + 8), vrecip);
      if (type == QuantType::kNF4) {
        Pack16(IndexNf4(s0), IndexNf4(s1), packed + i / 2);
      } else {
        Pack16(IndexFp4(s0), IndexFp4(s1), packed + i / 2);
      }
    }
    for (int64_t i = vec_end; i < end; i += 2) {
      const float s0 = Load1(x + i) * recip;
      const float s1 = (i + 1 < end ? Load1(x + i + 1) : 0.0f) * recip;
      packed[i / 2] = static_cast<uint8_t>((QuantizeOne(type, s0) << 4) | QuantizeOne(type, s1));
    }
  }
}

// Nibbles n of packed bytes as bytes n | (n << 4): sign-extended to 32 bits, the low 3
// bits select within an 8-entry half of the code book (vpermps) and the sign bit (bit 3
// of n) selects the half (blendv), so no per-vector shift is needed.
QLORAD_AVX2 inline void SplitNibbles(__m128i v, __m128i* hi, __m128i* lo) {
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m128i h = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
  const __m128i l = _mm_and_si128(v, mask);
  *hi = _mm_or_si128(h, _mm_slli_epi16(h, 4));
  *lo = _mm_or_si128(l, _mm_slli_epi16(l, 4));
}

// 16 lookup lanes (elements 2j -> high nibble of byte j) from 8 packed bytes.
QLORAD_AVX2 inline void Unpack16(const uint8_t* p, __m256i* i0, __m256i* i1) {
  __m128i hi, lo;
  SplitNibbles(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)), &hi, &lo);
  const __m128i il = _mm_unpacklo_epi8(hi, lo);
  *i0 = _mm256_cvtepi8_epi32(il);
  *i1 = _mm256_cvtepi8_epi32(_mm_srli_si128(il, 8));
}

// table[n] for 8 lanes made by SplitNibbles (lo = entries 0..7, hi = 8..15).
QLORAD_AVX2 inline __m256 Lookup(__m256 lo, __m256 hi, __m256i lanes) {
  const __m256 a = _mm256_permutevar8x32_ps(lo, lanes);
  const __m256 b = _mm256_permutevar8x32_ps(hi, lanes);
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(lanes));
}

// Round to nearest even like FloatToBf16. kMayBeNaN: also map NaN to 0x7fc0 (only
// needed when the block's scale is not finite: |code| <= 1 keeps products finite).
template <bool kMayBeNaN>
QLORAD_AVX2 inline void Store8(uint16_t* out, __m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  if (kMayBeNaN) {
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7fc0), _mm256_castps_si256(nan));
  }
  const __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), p);
}
template <bool kMayBeNaN>
QLORAD_AVX2 inline void Store8(float* out, __m256 v) { _mm256_storeu_ps(out, v); }
inline void Store1(float* out, float v) { *out = v; }
inline void Store1(uint16_t* out, float v) { *out = FloatToBf16(v); }

template <typename Out>
QLORAD_AVX2 void DequantizeRangeImpl(const Packed4bitView& w, int64_t begin, int64_t end,
                                     Out* out) {
  const float* code = CodeOf(w.type);
  const __m256 lut_lo = _mm256_loadu_ps(code);
  const __m256 lut_hi = _mm256_loadu_ps(code + 8);
  const uint8_t* packed = w.packed.data();
  int64_t i = begin;
  while (i < end) {
    const int64_t b = i / w.blocksize;
    const int64_t seg_end = std::min(end, (b + 1) * w.blocksize);
    const float s = w.scales.Get(b);
    const __m256 vs = _mm256_set1_ps(s);
    // code[n] * s for the 16 codes: the same fp32 products as scaling each value.
    const __m256 lo_s = _mm256_mul_ps(lut_lo, vs);
    const __m256 hi_s = _mm256_mul_ps(lut_hi, vs);
    if (i & 1) {
      Store1(out + (i - begin), code[packed[i / 2] & 0x0f] * s);
      ++i;
    }
    if (std::isfinite(s)) {
      for (; i + 16 <= seg_end; i += 16) {
        __m256i i0, i1;
        Unpack16(packed + i / 2, &i0, &i1);
        Store8<false>(out + (i - begin), Lookup(lo_s, hi_s, i0));
        Store8<false>(out + (i - begin) + 8, Lookup(lo_s, hi_s, i1));
      }
    } else {
      for (; i + 16 <= seg_end; i += 16) {
        __m256i i0, i1;
        Unpack16(packed + i / 2, &i0, &i1);
        Store8<true>(out + (i - begin), Lookup(lo_s, hi_s, i0));
        Store8<true>(out + (i - begin) + 8, Lookup(lo_s, hi_s, i1));
      }
    }
    for (; i < seg_end; ++i) {
      const uint8_t byte = packed[i / 2];
      Store1(out + (i - begin), code[(i & 1) ? (byte & 0x0f) : (byte >> 4)] * s);
    }
  }
}

// NB batch rows at once: each 32-weight group (16 bytes) is decoded once, scaled by its
// block's absmax and FMA'd into the accumulators of every batch row. Small NB spread the
// FMAs over C independent accumulators per row so FMA latency does not serialize them.
template <int NB>
QLORAD_AVX2 void GemmTileNb(const Packed4bitView& w, int64_t in, const GemmTile& t) {
  constexpr int C = NB == 1 ? 4 : (NB == 2 ? 2 : 1);
  const float* code = CodeOf(w.type);
  const __m256 lut_lo = _mm256_loadu_ps(code);
  const __m256 lut_hi = _mm256_loadu_ps(code + 8);
  const int64_t bs = w.blocksize;  // a multiple of 32
  const int64_t blocks_per_row = in / bs;
  for (int64_t o = t.o0; o < t.o1; ++o) {
    __m256 acc[NB][C];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b)
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[b][c] = _mm256_setzero_ps();
    const uint8_t* row = w.packed.data() + o * (in / 2);
    for (int64_t k = 0; k < blocks_per_row; ++k) {
      const __m256 vs = _mm256_set1_ps(w.scales.Get(o * blocks_per_row + k));
      const __m256 lo_s = _mm256_mul_ps(lut_lo, vs);  // code book scaled by the block's absmax
      const __m256 hi_s = _mm256_mul_ps(lut_hi, vs);
      for (int64_t j = k * bs; j < (k + 1) * bs; j += kGemmGroup) {
        const float* xg = t.x + (j / kGemmGroup) * NB * kGemmGroup;
        __m128i hi, lo;
        SplitNibbles(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j / 2)), &hi, &lo);
        const __m128i il0 = _mm_unpacklo_epi8(hi, lo);
        const __m128i il1 = _mm_unpackhi_epi8(hi, lo);
        const __m256i lanes[4] = {_mm256_cvtepi8_epi32(il0),
                                  _mm256_cvtepi8_epi32(_mm_srli_si128(il0, 8)),
                                  _mm256_cvtepi8_epi32(il1),
                                  _mm256_cvtepi8_epi32(_mm_srli_si128(il1, 8))};
        // Each decoded vector is used by every batch row right away (few live registers).
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          const __m256 wq = Lookup(lo_s, hi_s, lanes[q]);
#pragma GCC unroll 8
          for (int b = 0; b < NB; ++b) {
            const __m256 xq = _mm256_loadu_ps(xg + b * kGemmGroup + 8 * q);
            acc[b][q % C] = _mm256_fmadd_ps(wq, xq, acc[b][q % C]);
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      __m256 sum = acc[b][0];
#pragma GCC unroll 4
      for (int c = 1; c < C; ++c) sum = _mm256_add_ps(sum, acc[b][c]);
      t.y[b * t.ldy + o] = HorizontalSumAvx2(sum) + (t.bias ? t.bias[o] : 0.0f);
    }
  }
}

}  // namespace

void QuantizeBlocksAvx2(QuantType type, const float* x, int64_t n, int64_t blocksize,
                        int64_t b0, int64_t b1, uint8_t* packed, float* absmax) {
  QuantizeBlocksImpl(type, x, n, blocksize, b0, b1, packed, absmax);
}
void QuantizeBlocksAvx2(QuantType type, const uint16_t* x, int64_t n, int64_t blocksize,
                        int64_t b0, int64_t b1, uint8_t* packed, float* absmax) {
  QuantizeBlocksImpl(type, x, n, blocksize, b0, b1, packed, absmax);
}

void DequantizeRangeAvx2(const Packed4bitView& w, int64_t begin, int64_t end, float* out) {
  DequantizeRangeImpl(w, begin, end, out);
}
void DequantizeRangeAvx2(const Packed4bitView& w, int64_t begin, int64_t end, uint16_t* out) {
  DequantizeRangeImpl(w, begin, end, out);
}

void GemmTileAvx2(const Packed4bitView& w, int64_t in, const GemmTile& t) {
  static constexpr GemmTileFn kByRows[kGemmTileRows] = {
      GemmTileNb<1>, GemmTileNb<2>, GemmTileNb<3>, GemmTileNb<4>,
      GemmTileNb<5>, GemmTileNb<6>, GemmTileNb<7>, GemmTileNb<8>};
  kByRows[t.nb - 1](w, in, t);
}

}  // namespace qlorad::kernels::internal
