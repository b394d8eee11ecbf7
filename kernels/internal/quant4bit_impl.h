// Internal: scalar, AVX2 and AVX-512 bodies of the 4-bit kernels. Arguments are validated by
// the public functions (quant4bit.h, gemm4bit.h); these only compute.
#ifndef QLORAD_KERNELS_INTERNAL_QUANT4BIT_IMPL_H_
#define QLORAD_KERNELS_INTERNAL_QUANT4BIT_IMPL_H_

#include <cstdint>

#include "kernels/quant4bit.h"

namespace qlorad::kernels::internal {

// Quantizes blocks [b0, b1) of x (n elements in total, fp32 or bf16 bits).
void QuantizeBlocksScalar(QuantType type, const float* x, int64_t n, int64_t blocksize,
                          int64_t b0, int64_t b1, uint8_t* packed, float* absmax);
void QuantizeBlocksScalar(QuantType type, const uint16_t* x, int64_t n, int64_t blocksize,
                          int64_t b0, int64_t b1, uint8_t* packed, float* absmax);
void QuantizeBlocksAvx2(QuantType type, const float* x, int64_t n, int64_t blocksize,
                        int64_t b0, int64_t b1, uint8_t* packed, float* absmax);
void QuantizeBlocksAvx2(QuantType type, const uint16_t* x, int64_t n, int64_t blocksize,
                        int64_t b0, int64_t b1, uint8_t* packed, float* absmax);

// Dequantizes elements [begin, end) of w; out[0] receives element `begin`.
void DequantizeRangeScalar(const Packed4bitView& w, int64_t begin, int64_t end, float* out);
void DequantizeRangeScalar(const Packed4bitView& w, int64_t begin, int64_t end, uint16_t* out);
void DequantizeRangeAvx2(const Packed4bitView& w, int64_t begin, int64_t end, float* out);
void DequantizeRangeAvx2(const Packed4bitView& w, int64_t begin, int64_t end, uint16_t* out);

// One tile of the fused matmul (gemm4bit.h). W is [out, in] with in % blocksize == 0.
// For weight rows o in [o0, o1) and batch rows b in [0, nb), nb <= kGemmTileRows:
//   y[b * ldy + o] = (accumulate ? y[b * ldy + o] : 0) + sum over the blocks [k0, k1) of
//   row o of x[b * ldx + i] * W[o, i], + bias[o] when bias is not null.
inline constexpr int kGemmTileRows = 8;
struct GemmTile {
  const float* x = nullptr;  // AVX-512: in SplitEvenOddAvx512 order
  int64_t ldx = 0;
  int nb = 0;
  const float* bias = nullptr;
  float* y = nullptr;
  int64_t ldy = 0;
  int64_t o0 = 0, o1 = 0;
  int64_t k0 = 0, k1 = 0;
  bool accumulate = false;
};
void GemmTileScalar(const Packed4bitView& w, int64_t in, const GemmTile& t);
void GemmTileAvx2(const Packed4bitView& w, int64_t in, const GemmTile& t);
void GemmTileAvx512(const Packed4bitView& w, int64_t in, const GemmTile& t);

// The AVX-512 tile's x order: each run of 32 values becomes its 16 even-indexed values
// (the high nibbles of 16 packed bytes) followed by its 16 odd-indexed ones.
// x is [batch, in] with row stride ldx, in % 32 == 0; xs is [batch, in], dense.
void SplitEvenOddAvx512(const float* x, int64_t ldx, int64_t batch, int64_t in, float* xs);

// The 16 dequantized values of a 4-bit type.
inline const float* CodeOf(QuantType type);

bool Avx2Enabled();

}  // namespace qlorad::kernels::internal

#include "kernels/quant_tables.h"

namespace qlorad::kernels::internal {
inline const float* CodeOf(QuantType type) {
  return type == QuantType::kNF4 ? kNf4Code : kFp4Code;
}
}  // namespace qlorad::kernels::internal

#endif  // QLORAD_KERNELS_INTERNAL_QUANT4BIT_IMPL_H_
