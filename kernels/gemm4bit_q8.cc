#include "kernels/gemm4bit_q8.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "kernels/internal/gemm4bit_q8_impl.h"
#include "kernels/internal/quant4bit_impl.h"

namespace qlorad::kernels {

namespace internal {
namespace {

// std::nearbyint for |v| < 2^22 in the default rounding mode, without a libm call: adding
// 1.5 · 2^23 leaves no fraction bits, so the FPU rounds (ties to even) and the subtraction
// is exact. Needs strict fp32 semantics (no -ffast-math), as this library is built.
inline float RoundToNearestEven(float v) {
  constexpr float kShift = 12582912.0f;  // 1.5 · 2^23
  return (v + kShift) - kShift;
}

}  // namespace

const int8_t* Int8CodeBook(QuantType type) {
  struct alignas(16) Book {
    int8_t entries[16];
  };
  static const std::array<Book, 2> books = [] {
    std::array<Book, 2> result{};
    const QuantType types[2] = {QuantType::kNF4, QuantType::kFP4};
    for (int t = 0; t < 2; ++t) {
      const float* code = CodeOf(types[t]);
      for (int i = 0; i < 16; ++i) result[t].entries[i] = static_cast<int8_t>(std::lround(127.0f * code[i]));
    }
    return result;
  }();
  return books[type == QuantType::kNF4 ? 0 : 1].entries;
}

void Q8RowsScalar(const Packed4bitView& w, const Q8Input& x, const float* bias, float* y, int64_t ldy, int64_t o0,
                  int64_t o1) {
  const int8_t* book = Int8CodeBook(w.type);
  const int64_t in = x.in;
  for (int64_t o = o0; o < o1; ++o) {
    for (int64_t b = 0; b < x.batch; ++b) {
      const int8_t* xq = x.values + b * in;
      const float* xs = x.scales + b * (in / 8);
      float acc = 0.0f;
      for (int64_t c = 0; c < in / 64; ++c) {
        const uint8_t* bytes = w.packed.data() + (o * in + 64 * c) / 2;
        int32_t sums[2] = {0, 0};
        for (int j = 0; j < 32; ++j)
          sums[j / 16] += book[bytes[j] >> 4] * xq[64 * c + j] + book[bytes[j] & 15] * xq[64 * c + 32 + j];
        const float w_scale = w.scales.Get((o * in + 64 * c) / w.blocksize) / 127.0f;
        acc += w_scale * (static_cast<float>(sums[0]) * xs[8 * c] + static_cast<float>(sums[1]) * xs[8 * c + 4]);
      }
      y[b * ldy + o] = acc + (bias != nullptr ? bias[o] : 0.0f);
    }
  }
}

void QuantizeQ8Scalar(const float* x, int64_t batch, int64_t in, int8_t* values, float* scales) {
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t g = 0; g < in / kQ8Group; ++g) {
      const float* src = x + b * in + g * kQ8Group;
      float absmax = 0.0f;
      for (int64_t i = 0; i < kQ8Group; ++i) absmax = std::max(absmax, std::fabs(src[i]));
      const float scale = absmax / 127.0f, inverse = absmax > 0.0f ? 127.0f / absmax : 0.0f;
      float* chunk_scales = scales + b * (in / 8) + (g / 2) * 8 + (g % 2) * 4;
      for (int i = 0; i < 4; ++i) chunk_scales[i] = scale;
      // Column i of this group: chunk c = i / 64, even columns first, then odd ones.
      for (int64_t i = 0; i < kQ8Group; ++i) {
        const int64_t col = g * kQ8Group + i, chunk = col / 64, within = col % 64;
        const int64_t slot = chunk * 64 + (within % 2) * 32 + within / 2;
        values[b * in + slot] = static_cast<int8_t>(RoundToNearestEven(src[i] * inverse));
      }
    }
  }
}

}  // namespace internal

bool Gemm4bitQ8Supports(const Packed4bitView& w, int64_t in) { return in % 64 == 0 && w.blocksize % 64 == 0; }

Q8Input QuantizeQ8Input(const float* x, int64_t batch, int64_t in, int8_t* values, float* scales) {
  const CpuIsa isa = ActiveIsa();
  if (isa >= CpuIsa::kAvx2) {
    internal::QuantizeQ8Avx2(x, batch, in, values, scales);
  } else {
    internal::QuantizeQ8Scalar(x, batch, in, values, scales);
  }
  return {isa, values, scales, batch, in};
}

void Gemm4bitQ8Rows(const Packed4bitView& w, const Q8Input& x, const float* bias, float* y, int64_t ldy, int64_t o0,
                    int64_t o1) {
  if (x.isa >= CpuIsa::kAvx512 && Avx512VnniSupported()) {
    internal::Q8RowsAvx512Vnni(w, x, bias, y, ldy, o0, o1);
  } else if (x.isa >= CpuIsa::kAvx2) {
    internal::Q8RowsAvx2(w, x, bias, y, ldy, o0, o1);
  } else {
    internal::Q8RowsScalar(w, x, bias, y, ldy, o0, o1);
  }
}

}  // namespace qlorad::kernels
