// AVX2+FMA bodies of kernels/matvec.h (same structure as matvec_avx512.cc with
// 8-wide vectors); the last in % 8 columns of a row are summed in scalar code.
#include <immintrin.h>

#include "kernels/bf16.h"
#include "kernels/internal/avx2_util.h"
#include "kernels/internal/matvec_impl.h"

#define QLORAD_AVX2 __attribute__((target("avx2,fma")))

namespace qlorad::kernels::internal {
namespace {

constexpr int64_t kPrefetchBytes = 2048;
// WeightedRowSum reads short runs of rows (one head's cached values, often cold after the
// weights streamed through): each row's 32 columns (two cache lines of fp32) are prefetched this
// many rows ahead.
constexpr int64_t kWeightedRowsAhead = 8;

// Weight formats: 8 consecutive weights widened to fp32 (exactly), and one weight.
struct F32 {
  using T = float;
  QLORAD_AVX2 static __m256 Load(const T* p) { return _mm256_loadu_ps(p); }
  static float One(const T* p) { return *p; }
};
struct Bf16 {
  using T = uint16_t;
  QLORAD_AVX2 static __m256 Load(const T* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float One(const T* p) { return Bf16ToFloat(*p); }
};
struct Int8 {
  using T = int8_t;
  QLORAD_AVX2 static __m256 Load(const T* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static float One(const T* p) { return static_cast<float>(*p); }
};

// As matvec_avx512.cc: one weight row against NB batch rows, U 8-weight steps per
// iteration, rows in memory order with a software prefetch per 64 bytes of weights.
template <typename Format, int NB, int U>
QLORAD_AVX2 void Row(const MatvecArgs& a, int64_t o) {
  using T = typename Format::T;
  constexpr int64_t kPrefetch = kPrefetchBytes / sizeof(T);
  __m256 acc[U][NB];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[u][b] = _mm256_setzero_ps();
  const T* w = static_cast<const T*>(a.w.data) + o * a.w.stride;
  const int64_t in = a.w.in;
  int64_t i = 0;
  for (; i + 8 * U <= in; i += 8 * U) {
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      if ((8 * u * sizeof(T)) % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(w + i + 8 * u + kPrefetch), _MM_HINT_T0);
      const __m256 wv = Format::Load(w + i + 8 * u);
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b)
        acc[u][b] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a.x + b * a.x_stride + i + 8 * u), acc[u][b]);
    }
  }
  for (; i + 8 <= in; i += 8) {
    const __m256 wv = Format::Load(w + i);
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[0][b] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a.x + b * a.x_stride + i), acc[0][b]);
  }
  const float scale = a.w.row_scale != nullptr ? a.w.row_scale[o] : 1.0f;
  const float bias = a.bias != nullptr ? a.bias[o] : 0.0f;
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    __m256 sum = acc[0][b];
#pragma GCC unroll 8
    for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, acc[u][b]);
    float total = HorizontalSumAvx2(sum);
    for (int64_t j = i; j < in; ++j) total += Format::One(w + j) * a.x[b * a.x_stride + j];
    a.y[b * a.y_stride + o] = total * scale + bias;
  }
}

template <typename Format, int NB>
QLORAD_AVX2 void Rows(const MatvecArgs& a) {
  constexpr int kUnroll = NB == 1 ? 4 : (NB == 2 ? 2 : 1);  // NB·U accumulators + NB x loads ≤ 16 ymm
  for (int64_t o = a.row_begin; o < a.row_end; ++o) Row<Format, NB, kUnroll>(a, o);
}

template <typename Format>
QLORAD_AVX2 void RowsOfFormat(const MatvecArgs& a) {
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

QLORAD_AVX2 void MatvecRowsAvx2(const MatvecArgs& a) {
  switch (a.w.format) {
    case WeightFormat::kBf16: return RowsOfFormat<Bf16>(a);
    case WeightFormat::kInt8RowScaled: return RowsOfFormat<Int8>(a);
    case WeightFormat::kF32: break;
  }
  RowsOfFormat<F32>(a);
}

namespace {

// 32 columns per pass over the rows (a 64-value fp32 head row in two passes of one
// 128-byte run each); two rows per step into separate accumulators; scalar columns at the end.
template <typename Format>
QLORAD_AVX2 void WeightedRowSumOfFormat(const WeightMatrix& w, int64_t rows, const float* p, float* out) {
  using T = typename Format::T;
  const T* m = static_cast<const T*>(w.data);
  const int64_t cols = w.in, m_stride = w.stride;
  int64_t c0 = 0;
  for (; c0 + 32 <= cols; c0 += 32) {
    __m256 even[4], odd[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) even[k] = odd[k] = _mm256_setzero_ps();
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      const T* row0 = m + r * m_stride + c0;
      const T* row1 = row0 + m_stride;
      const __m256 p0 = _mm256_set1_ps(p[r]), p1 = _mm256_set1_ps(p[r + 1]);
      for (int64_t line = 0; line < 32; line += 64 / static_cast<int64_t>(sizeof(T))) {
        _mm_prefetch(reinterpret_cast<const char*>(row0 + kWeightedRowsAhead * m_stride + line), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(row1 + kWeightedRowsAhead * m_stride + line), _MM_HINT_T0);
      }
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        even[k] = _mm256_fmadd_ps(p0, Format::Load(row0 + 8 * k), even[k]);
        odd[k] = _mm256_fmadd_ps(p1, Format::Load(row1 + 8 * k), odd[k]);
      }
    }
    if (r < rows) {
      const __m256 p0 = _mm256_set1_ps(p[r]);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) even[k] = _mm256_fmadd_ps(p0, Format::Load(m + r * m_stride + c0 + 8 * k), even[k]);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) _mm256_storeu_ps(out + c0 + 8 * k, _mm256_add_ps(even[k], odd[k]));
  }
  for (; c0 + 8 <= cols; c0 += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t r = 0; r < rows; ++r) acc = _mm256_fmadd_ps(_mm256_set1_ps(p[r]), Format::Load(m + r * m_stride + c0), acc);
    _mm256_storeu_ps(out + c0, acc);
  }
  for (; c0 < cols; ++c0) {
    float sum = 0.0f;
    for (int64_t r = 0; r < rows; ++r) sum += p[r] * Format::One(m + r * m_stride + c0);
    out[c0] = sum;
  }
}

// As matvec_avx512.cc: long rows streamed whole, one after another, into `out` (in L1).
template <typename Format>
QLORAD_AVX2 void AccumulateLongRows(const WeightMatrix& m, int64_t rows, const float* p, float* out) {
  using T = typename Format::T;
  constexpr int64_t kPrefetch = kPrefetchBytes / sizeof(T);
  const T* data = static_cast<const T*>(m.data);
  const int64_t cols = m.in, full = cols / 8 * 8;
  for (int64_t c = 0; c < cols; ++c) out[c] = 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = data + r * m.stride;
    const __m256 weight = _mm256_set1_ps(p[r]);
    for (int64_t c = 0; c < full; c += 8) {
      if ((c * sizeof(T)) % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(row + c + kPrefetch), _MM_HINT_T0);
      _mm256_storeu_ps(out + c, _mm256_fmadd_ps(weight, Format::Load(row + c), _mm256_loadu_ps(out + c)));
    }
    for (int64_t c = full; c < cols; ++c) out[c] += p[r] * Format::One(row + c);
  }
}

constexpr int64_t kLongRow = 256;  // as matvec_avx512.cc

}  // namespace

QLORAD_AVX2 void WeightedRowSumAvx2(const WeightMatrix& m, int64_t rows, const float* p, float* out) {
  const bool long_rows = m.in >= kLongRow;
  if (m.format == WeightFormat::kBf16)
    return long_rows ? AccumulateLongRows<Bf16>(m, rows, p, out) : WeightedRowSumOfFormat<Bf16>(m, rows, p, out);
  if (long_rows) return AccumulateLongRows<F32>(m, rows, p, out);
  WeightedRowSumOfFormat<F32>(m, rows, p, out);
}

}  // namespace qlorad::kernels::internal
