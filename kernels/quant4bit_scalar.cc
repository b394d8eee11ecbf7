// Portable (scalar) bodies of the 4-bit kernels; the AVX2 ones must match them bit
// for bit (quant4bit_avx2.cc), and kernels tests check that.
#include <algorithm>
#include <cmath>

#include "kernels/bf16.h"
#include "kernels/internal/quant4bit_impl.h"
#include "kernels/quant_tables.h"

namespace qlorad::kernels::internal {
namespace {

inline float Load(const float* x, int64_t i) { return x[i]; }
inline float Load(const uint16_t* x, int64_t i) { return Bf16ToFloat(x[i]); }

inline uint8_t QuantizeNf4(float s) {
  int idx = 0;
  for (float t : kNf4Thresholds) idx += (s > t) ? 1 : 0;  // NaN -> 0
  return static_cast<uint8_t>(idx);
}

inline uint8_t QuantizeFp4(float s) {
  const int sign = s < 0.0f ? 0b1000 : 0;
  const float a = std::fabs(s);
  int rank = 0;
  for (float t : kFp4Thresholds) rank += (a > t) ? 1 : 0;
  return static_cast<uint8_t>(kFp4RankToCode[rank] + sign);
}

template <typename T>
void QuantizeBlocks(QuantType type, const T* x, int64_t n, int64_t blocksize, int64_t b0,
                    int64_t b1, uint8_t* packed, float* absmax) {
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t begin = b * blocksize;
    const int64_t end = std::min(n, begin + blocksize);
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::fmax(amax, std::fabs(Load(x, i)));
    absmax[b] = amax;
    const float recip = 1.0f / amax;
    // Pairs start at even indices (blocks are even-sized); a trailing single element
    // pairs with a padding 0.0 scaled like its block.
    for (int64_t i = begin; i < end; i += 2) {
      const float s0 = Load(x, i) * recip;
      const float s1 = (i + 1 < end ? Load(x, i + 1) : 0.0f) * recip;
      const uint8_t q0 = type == QuantType::kNF4 ? QuantizeNf4(s0) : QuantizeFp4(s0);
      const uint8_t q1 = type == QuantType::kNF4 ? QuantizeNf4(s1) : QuantizeFp4(s1);
      packed[i / 2] = static_cast<uint8_t>((q0 << 4) | q1);
    }
  }
}

inline void Store(float* out, int64_t i, float v) { out[i] = v; }
inline void Store(uint16_t* out, int64_t i, float v) { out[i] = FloatToBf16(v); }

template <typename Out>
void DequantizeRange(const Packed4bitView& w, int64_t begin, int64_t end, Out* out) {
  const float* code = CodeOf(w.type);
  const uint8_t* packed = w.packed.data();
  int64_t i = begin;
  while (i < end) {
    const int64_t b = i / w.blocksize;
    const int64_t seg_end = std::min(end, (b + 1) * w.blocksize);
    const float s = w.scales.Get(b);
    for (; i < seg_end; ++i) {
      const uint8_t byte = packed[i / 2];
      const int nib = (i & 1) ? (byte & 0x0f) : (byte >> 4);
      Store(out, i - begin, code[nib] * s);
    }
  }
}

}  // namespace

void QuantizeBlocksScalar(QuantType type, const float* x, int64_t n, int64_t blocksize,
                          int64_t b0, int64_t b1, uint8_t* packed, float* absmax) {
  QuantizeBlocks(type, x, n, blocksize, b0, b1, packed, absmax);
}
void QuantizeBlocksScalar(QuantType type, const uint16_t* x, int64_t n, int64_t blocksize,
                          int64_t b0, int64_t b1, uint8_t* packed, float* absmax) {
  QuantizeBlocks(type, x, n, blocksize, b0, b1, packed, absmax);
}

void DequantizeRangeScalar(const Packed4bitView& w, int64_t begin, int64_t end, float* out) {
  DequantizeRange(w, begin, end, out);
}
void DequantizeRangeScalar(const Packed4bitView& w, int64_t begin, int64_t end, uint16_t* out) {
  DequantizeRange(w, begin, end, out);
}

void PackTileX(const float* x, int64_t ldx, int nb, int64_t in, float* packed) {
  for (int64_t g = 0; g < in / kGemmGroup; ++g) {
    for (int b = 0; b < nb; ++b) {
      std::copy_n(x + b * ldx + g * kGemmGroup, kGemmGroup, packed + (g * nb + b) * kGemmGroup);
    }
  }
}

void GemmTileScalar(const Packed4bitView& w, int64_t in, const GemmTile& t) {
  const float* code = CodeOf(w.type);
  const int64_t bs = w.blocksize;
  const int64_t blocks_per_row = in / bs;
  for (int64_t o = t.o0; o < t.o1; ++o) {
    const uint8_t* row = w.packed.data() + o * (in / 2);
    for (int b = 0; b < t.nb; ++b) {
      float acc = 0.0f;
      for (int64_t k = 0; k < blocks_per_row; ++k) {
        float block_acc = 0.0f;
        for (int64_t j = k * bs; j < (k + 1) * bs; j += kGemmGroup) {
          const uint8_t* p = row + j / 2;
          const float* xg = t.x + ((j / kGemmGroup) * t.nb + b) * kGemmGroup;
          for (int64_t i = 0; i < kGemmGroup; i += 2) {
            block_acc += code[p[i / 2] >> 4] * xg[i];
            block_acc += code[p[i / 2] & 0x0f] * xg[i + 1];
          }
        }
        acc += block_acc * w.scales.Get(o * blocks_per_row + k);
      }
      t.y[b * t.ldy + o] = acc + (t.bias ? t.bias[o] : 0.0f);
    }
  }
}

}  // namespace qlorad::kernels::internal
