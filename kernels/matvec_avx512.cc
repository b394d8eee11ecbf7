// AVX-512F bodies of kernels/matvec.h, compiled per function with
// __attribute__((target)) and only called when cpu_isa.h reports AVX-512.
// Each W vector loaded serves every batch row (x stays in L1). Measured on a 2-core EPYC (AVX-512), in = 768: walking one row at a time
// with a 2 KB software prefetch streams 24.6 GB/s on one core against 13.3 GB/s for four
// interleaved rows, whose short streams the hardware prefetcher kept restarting.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 bug 105593, as gemm4bit_avx512.cc
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstring>

#include "kernels/bf16.h"
#include "kernels/internal/matvec_impl.h"

#define QLORAD_AVX512 __attribute__((target("avx512f")))

namespace qlorad::kernels::internal {
namespace {

constexpr int64_t kPrefetchBytes = 2048;
// WeightedRowSum reads short runs of rows (one head's cached values, often cold after the
// weights streamed through): each row is prefetched this many rows ahead.
constexpr int64_t kWeightedRowsAhead = 8;

// _mm512_reduce_add_ps without GCC 12's uninitialized-register warning (bug 105593):
// through memory, once per output row.
QLORAD_AVX512 inline float HorizontalSum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  return sum;
}

// Weight formats: 16 consecutive weights widened to fp32 (exactly), and one weight.
struct F32 {
  using T = float;
  QLORAD_AVX512 static __m512 Load(const T* p) { return _mm512_loadu_ps(p); }
  // The first `count` (0..16) weights at p, zeros after; mask = (1 << count) - 1.
  QLORAD_AVX512 static __m512 LoadFirst(const T* p, int /*count*/, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
  static float One(const T* p) { return *p; }
};
struct Bf16 {
  using T = uint16_t;
  QLORAD_AVX512 static __m512 Load(const T* p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  // As F32::LoadFirst (AVX-512F has no masked 16-bit load: a partial block goes through a copy).
  QLORAD_AVX512 static __m512 LoadFirst(const T* p, int count, __mmask16 /*mask*/) {
    if (count == 16) return Load(p);
    if (count == 0) return _mm512_setzero_ps();
    alignas(32) T block[16] = {};
    std::memcpy(block, p, sizeof(T) * count);
    return Load(block);
  }
  static float One(const T* p) { return Bf16ToFloat(*p); }
};
struct Int8 {
  using T = int8_t;
  QLORAD_AVX512 static __m512 Load(const T* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static float One(const T* p) { return static_cast<float>(*p); }
};

// One weight row against NB batch rows, U 16-weight steps per iteration (U·NB
// independent accumulators). Rows are walked in memory order, so the weights are one
// sequential stream; the prefetch runs kPrefetchBytes ahead, into the next row(s). The
// last in % 16 weights are summed in scalar code.
template <typename Format, int NB, int U>
QLORAD_AVX512 void Row(const MatvecArgs& a, int64_t o) {
  using T = typename Format::T;
  constexpr int64_t kPrefetch = kPrefetchBytes / sizeof(T);
  __m512 acc[U][NB];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[u][b] = _mm512_setzero_ps();
  const T* w = static_cast<const T*>(a.w.data) + o * a.w.stride;
  const int64_t in = a.w.in;
  int64_t i = 0;
  for (; i + 16 * U <= in; i += 16 * U) {
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      if ((16 * u * sizeof(T)) % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(w + i + 16 * u + kPrefetch), _MM_HINT_T0);
      const __m512 wv = Format::Load(w + i + 16 * u);
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b)
        acc[u][b] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(a.x + b * a.x_stride + i + 16 * u), acc[u][b]);
    }
  }
  for (; i + 16 <= in; i += 16) {
    const __m512 wv = Format::Load(w + i);
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[0][b] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(a.x + b * a.x_stride + i), acc[0][b]);
  }
  const float scale = a.w.row_scale != nullptr ? a.w.row_scale[o] : 1.0f;
  const float bias = a.bias != nullptr ? a.bias[o] : 0.0f;
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    __m512 sum = acc[0][b];
#pragma GCC unroll 8
    for (int u = 1; u < U; ++u) sum = _mm512_add_ps(sum, acc[u][b]);
    float total = HorizontalSum(sum);
    for (int64_t j = i; j < in; ++j) total += Format::One(w + j) * a.x[b * a.x_stride + j];
    a.y[b * a.y_stride + o] = total * scale + bias;
  }
}

template <typename Format, int NB>
QLORAD_AVX512 void Rows(const MatvecArgs& a) {
  constexpr int kUnroll = NB == 1 ? 4 : (NB == 2 ? 2 : 1);
  for (int64_t o = a.row_begin; o < a.row_end; ++o) Row<Format, NB, kUnroll>(a, o);
}

template <typename Format>
QLORAD_AVX512 void RowsOfFormat(const MatvecArgs& a) {
  switch (a.batch) {
    case 1: return Rows<Format, 1>(a);
    case 2: return Rows<Format, 2>(a);
    case 3: return Rows<Format, 3>(a);
    case 4: return Rows<Format, 4>(a);
    case 5: return Rows<Format, 5>(a);
    case 6: return Rows<Format, 6>(a);
    case 7: return Rows<Format, 7>(a);
    default: return Rows<Format, 8>(a);
  }
}

}  // namespace

QLORAD_AVX512 void MatvecRowsAvx512(const MatvecArgs& a) {
  switch (a.w.format) {
    case WeightFormat::kBf16: return RowsOfFormat<Bf16>(a);
    case WeightFormat::kInt8RowScaled: return RowsOfFormat<Int8>(a);
    case WeightFormat::kF32: break;
  }
  RowsOfFormat<F32>(a);
}

namespace {

// Up to 64 columns per pass over the rows, so that each row is read as one sequential
// run (a head's 64-value row is one pass); two rows per step into separate accumulators.
template <typename Format>
QLORAD_AVX512 void WeightedRowSumOfFormat(const WeightMatrix& m, int64_t rows, const float* p, float* out) {
  using T = typename Format::T;
  const T* data = static_cast<const T*>(m.data);
  const int64_t cols = m.in, stride = m.stride;
  for (int64_t c0 = 0; c0 < cols; c0 += 64) {
    int left[4];
    __mmask16 mask[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      left[k] = static_cast<int>(std::clamp<int64_t>(cols - c0 - 16 * k, 0, 16));
      mask[k] = static_cast<__mmask16>((1u << left[k]) - 1);
    }
    __m512 even[4], odd[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) even[k] = odd[k] = _mm512_setzero_ps();
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      const T* row0 = data + r * stride + c0;
      const T* row1 = row0 + stride;
      const __m512 p0 = _mm512_set1_ps(p[r]), p1 = _mm512_set1_ps(p[r + 1]);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        if ((16 * k * sizeof(T)) % 64 == 0) {
          _mm_prefetch(reinterpret_cast<const char*>(row0 + kWeightedRowsAhead * stride + 16 * k), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(row1 + kWeightedRowsAhead * stride + 16 * k), _MM_HINT_T0);
        }
        even[k] = _mm512_fmadd_ps(p0, Format::LoadFirst(row0 + 16 * k, left[k], mask[k]), even[k]);
        odd[k] = _mm512_fmadd_ps(p1, Format::LoadFirst(row1 + 16 * k, left[k], mask[k]), odd[k]);
      }
    }
    if (r < rows) {
      const __m512 p0 = _mm512_set1_ps(p[r]);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k)
        even[k] = _mm512_fmadd_ps(p0, Format::LoadFirst(data + r * stride + c0 + 16 * k, left[k], mask[k]), even[k]);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) _mm512_mask_storeu_ps(out + c0 + 16 * k, mask[k], _mm512_add_ps(even[k], odd[k]));
  }
}

// Long rows (a LoRA Bᵀ's out-long rows): each row streamed whole, in order, into `out`,
// which stays in L1 (a few KB), so the weights are one sequential stream with a software
// prefetch kPrefetchBytes ahead, as MatvecRows reads them.
template <typename Format>
QLORAD_AVX512 void AccumulateLongRows(const WeightMatrix& m, int64_t rows, const float* p, float* out) {
  using T = typename Format::T;
  constexpr int64_t kPrefetch = kPrefetchBytes / sizeof(T);
  const T* data = static_cast<const T*>(m.data);
  const int64_t cols = m.in, full = cols / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (cols - full)) - 1);
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = data + r * m.stride;
    const __m512 weight = _mm512_set1_ps(p[r]);
    int64_t c = 0;
    for (; c < full; c += 16) {
      if ((c * sizeof(T)) % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(row + c + kPrefetch), _MM_HINT_T0);
      const __m512 sum = r == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(out + c);
      _mm512_storeu_ps(out + c, _mm512_fmadd_ps(weight, Format::Load(row + c), sum));
    }
    if (c < cols) {
      const __m512 sum = r == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(tail, out + c);
      const __m512 w = Format::LoadFirst(row + c, static_cast<int>(cols - c), tail);
      _mm512_mask_storeu_ps(out + c, tail, _mm512_fmadd_ps(weight, w, sum));
    }
  }
  if (rows == 0)
    for (int64_t c = 0; c < cols; ++c) out[c] = 0.0f;
}

// Rows at least this long are streamed one at a time (AccumulateLongRows): sgmv_bench's Bᵀ
// passes (r = 16 rows of 256–2048) ran 12.4 → 10.5 and 12.6 → 11.9 ms per step on 2 threads,
// 20.8 → 17.0 and 20.9 → 17.9 on one. Attention's head rows (64–128) keep the column passes.
constexpr int64_t kLongRow = 256;

}  // namespace

QLORAD_AVX512 void WeightedRowSumAvx512(const WeightMatrix& m, int64_t rows, const float* p, float* out) {
  const bool long_rows = m.in >= kLongRow;
  if (m.format == WeightFormat::kBf16)
    return long_rows ? AccumulateLongRows<Bf16>(m, rows, p, out) : WeightedRowSumOfFormat<Bf16>(m, rows, p, out);
  if (long_rows) return AccumulateLongRows<F32>(m, rows, p, out);
  WeightedRowSumOfFormat<F32>(m, rows, p, out);
}

}  // namespace qlorad::kernels::internal
