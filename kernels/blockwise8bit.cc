// bitsandbytes' blockwise 8-bit quantization with a 256-entry code (blockwise8bit.h).
#include "kernels/blockwise8bit.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <immintrin.h>

#include "absl/strings/str_cat.h"
#include "kernels/internal/quant4bit_impl.h"
#include "kernels/parallel.h"
#include "kernels/quant4bit.h"

namespace qlorad::kernels {
namespace {

// QuantizeDynamic8bit for 8 values at once (AVX2): the same selects and fp32 operations,
// lane by lane, so results are identical; gathers replace the dependent scalar loads.
__attribute__((target("avx2,fma"))) void QuantizeDynamic8bitX8(const float* code, const float* x,
                                                               float recip, uint8_t* out) {
  const __m256 xv = _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_set1_ps(recip));
  __m256i pivot = _mm256_set1_epi32(127), upper_pivot = _mm256_set1_epi32(255);
  __m256i lower_pivot = _mm256_setzero_si256();
  __m256 lower = _mm256_set1_ps(-1.0f), upper = _mm256_set1_ps(1.0f);
  __m256 val = _mm256_i32gather_ps(code, pivot, 4);
  for (int step = 64; step > 0; step >>= 1) {
    const __m256 gt = _mm256_cmp_ps(xv, val, _CMP_GT_OQ);
    const __m256i gti = _mm256_castps_si256(gt);
    lower_pivot = _mm256_blendv_epi8(lower_pivot, pivot, gti);
    lower = _mm256_blendv_ps(lower, val, gt);
    upper_pivot = _mm256_blendv_epi8(pivot, upper_pivot, gti);
    upper = _mm256_blendv_ps(val, upper, gt);
    pivot = _mm256_add_epi32(
        pivot, _mm256_blendv_epi8(_mm256_set1_epi32(-step), _mm256_set1_epi32(step), gti));
    val = _mm256_i32gather_ps(code, pivot, 4);
  }
  upper = _mm256_blendv_ps(upper, _mm256_set1_ps(code[255]),
                           _mm256_castsi256_ps(_mm256_cmpeq_epi32(upper_pivot, _mm256_set1_epi32(255))));
  lower = _mm256_blendv_ps(lower, _mm256_set1_ps(code[0]),
                           _mm256_castsi256_ps(_mm256_cmpeq_epi32(lower_pivot, _mm256_setzero_si256())));
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 mid_up = _mm256_mul_ps(_mm256_add_ps(upper, val), half);
  const __m256 mid_lo = _mm256_mul_ps(_mm256_add_ps(lower, val), half);
  const __m256i res_gt = _mm256_blendv_epi8(
      pivot, upper_pivot, _mm256_castps_si256(_mm256_cmp_ps(xv, mid_up, _CMP_GT_OQ)));
  const __m256i res_le = _mm256_blendv_epi8(
      pivot, lower_pivot, _mm256_castps_si256(_mm256_cmp_ps(xv, mid_lo, _CMP_LT_OQ)));
  const __m256i res =
      _mm256_blendv_epi8(res_le, res_gt, _mm256_castps_si256(_mm256_cmp_ps(xv, val, _CMP_GT_OQ)));
  const __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(res), _mm256_extracti128_si256(res, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(p16, p16));
}

}  // namespace

uint8_t QuantizeDynamic8bit(const float* code, float x) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = code[pivot];
  // Branch-free form of bitsandbytes' loop (same updates, selected instead of branched).
  for (int step = 64; step > 0; step >>= 1) {
    const bool gt = x > val;
    lower_pivot = gt ? pivot : lower_pivot;
    lower = gt ? val : lower;
    upper_pivot = gt ? upper_pivot : pivot;
    upper = gt ? upper : val;
    pivot += gt ? step : -step;
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) {
    const float midpoint = (upper + val) * 0.5f;
    return static_cast<uint8_t>(x > midpoint ? upper_pivot : pivot);
  }
  const float midpoint = (lower + val) * 0.5f;
  return static_cast<uint8_t>(x < midpoint ? lower_pivot : pivot);
}

absl::Status QuantizeBlockwise8bit(absl::Span<const float> x, int64_t blocksize,
                                   absl::Span<const float> code, absl::Span<uint8_t> q,
                                   absl::Span<float> absmax) {
  const int64_t n = static_cast<int64_t>(x.size());
  if (n == 0) return absl::InvalidArgumentError("QuantizeBlockwise8bit: empty tensor");
  auto s = CheckBlocksize(blocksize);
  if (!s.ok()) return s;
  if (code.size() != 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("QuantizeBlockwise8bit: code has ", code.size(), " values, expected 256"));
  }
  if (q.size() != x.size()) {
    return absl::InvalidArgumentError(absl::StrCat("QuantizeBlockwise8bit: output has ", q.size(),
                                                   " codes, expected ", n));
  }
  const int64_t blocks = NumBlocks(n, blocksize);
  if (static_cast<int64_t>(absmax.size()) != blocks) {
    return absl::InvalidArgumentError(absl::StrCat("QuantizeBlockwise8bit: absmax has ",
                                                   absmax.size(), " values, expected ", blocks));
  }
  const bool avx2 = internal::Avx2Enabled();
  ParallelFor(blocks, std::max<int64_t>(1, 16384 / blocksize), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * blocksize, end = std::min(n, begin + blocksize);
      float amax = 0.0f;
      for (int64_t i = begin; i < end; ++i) amax = std::fmax(amax, std::fabs(x[i]));
      absmax[b] = amax;
      const float recip = 1.0f / amax;
      int64_t i = begin;
      if (avx2) {
        for (; i + 8 <= end; i += 8) QuantizeDynamic8bitX8(code.data(), x.data() + i, recip, q.data() + i);
      }
      for (; i < end; ++i) q[i] = QuantizeDynamic8bit(code.data(), x[i] * recip);
    }
  });
  return absl::OkStatus();
}

absl::Status DequantizeBlockwise8bit(absl::Span<const uint8_t> q, absl::Span<const float> absmax,
                                     int64_t blocksize, absl::Span<const float> code,
                                     absl::Span<float> out) {
  const int64_t n = static_cast<int64_t>(q.size());
  if (n == 0) return absl::InvalidArgumentError("DequantizeBlockwise8bit: empty tensor");
  if (blocksize <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DequantizeBlockwise8bit: blocksize ", blocksize, " must be > 0"));
  }
  if (code.size() != 256 || static_cast<int64_t>(absmax.size()) != NumBlocks(n, blocksize) ||
      out.size() != q.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DequantizeBlockwise8bit: size mismatch (codes ", n, ", absmax ", absmax.size(),
        " expected ", NumBlocks(n, blocksize), ", code ", code.size(), " expected 256, out ",
        out.size(), ")"));
  }
  for (int64_t i = 0; i < n; ++i) out[i] = code[q[i]] * absmax[i / blocksize];
  return absl::OkStatus();
}

float MeanOffset(absl::Span<const float> absmax) {
  double sum = 0.0;
  for (float v : absmax) sum += v;
  return static_cast<float>(sum / static_cast<double>(absmax.size()));
}

absl::StatusOr<float> DoubleQuantizeAbsmax(absl::Span<const float> absmax, int64_t nested_blocksize,
                                           absl::Span<const float> code, absl::Span<uint8_t> codes,
                                           absl::Span<float> nested_absmax) {
  if (absmax.empty()) return absl::InvalidArgumentError("DoubleQuantizeAbsmax: no absmax values");
  const float offset = MeanOffset(absmax);
  std::vector<float> centered(absmax.size());
  for (size_t i = 0; i < absmax.size(); ++i) centered[i] = absmax[i] - offset;
  auto s = QuantizeBlockwise8bit(centered, nested_blocksize, code, codes, nested_absmax);
  if (!s.ok()) return s;
  return offset;
}

}  // namespace qlorad::kernels
