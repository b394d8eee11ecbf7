// Internal: scalar, AVX2 and AVX-512 bodies of the 4-bit kernels. Arguments are
// validated by the public functions (quant4bit.h, gemm4bit.h); these only compute.
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
//   y[b * ldy + o] = sum_i x[b, i] * W[o, i] (+ bias[o] when bias is not null).
// x is the tile's nb rows packed group-major (PackTileX*): the 32 values of column group g
// (columns 32g .. 32g + 31) of row b start at x + (g * nb + b) * 32, so the kernels read x
// as one forward stream, like the weight rows (no L1 set conflicts between batch rows a
// power of two apart). Rows are not cut into column chunks: short weight runs defeat the
// hardware prefetcher, which costs more than reading x from L2 (measured with nf4_bench).
inline constexpr int kGemmTileRows = 8;
inline constexpr int64_t kGemmGroup = 32;
struct GemmTile {
  const float* x = nullptr;
  int nb = 0;
  const float* bias = nullptr;
  float* y = nullptr;
  int64_t ldy = 0;
  int64_t o0 = 0, o1 = 0;
};
using GemmTileFn = void (*)(const Packed4bitView& w, int64_t in, const GemmTile& t);
void GemmTileScalar(const Packed4bitView& w, int64_t in, const GemmTile& t);
void GemmTileAvx2(const Packed4bitView& w, int64_t in, const GemmTile& t);
void GemmTileAvx512(const Packed4bitView& w, int64_t in, const GemmTile& t);

// Packs nb rows of x (row stride ldx, in % 32 == 0) into a tile's layout (nb * in values).
// The AVX-512 tile also wants each group's 16 even-indexed values (the high nibbles of its
// 16 packed bytes) before its 16 odd-indexed ones.
void PackTileX(const float* x, int64_t ldx, int nb, int64_t in, float* packed);
void PackTileXAvx512(const float* x, int64_t ldx, int nb, int64_t in, float* packed);

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
