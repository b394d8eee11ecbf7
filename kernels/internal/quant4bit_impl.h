// Internal: scalar and AVX2 bodies of the 4-bit kernels. Arguments are validated by
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

// y[b * ldy + o] = sum_i x[b * ldx + i] * W[o, i] (+ bias[o]) for rows o in [o0, o1),
// batch rows b in [0, batch). W is [out, in] with in % blocksize == 0.
void GemmRowsScalar(const Packed4bitView& w, int64_t in, const float* x, int64_t ldx,
                    int64_t batch, const float* bias, float* y, int64_t ldy, int64_t o0,
                    int64_t o1);
void GemmRowsAvx2(const Packed4bitView& w, int64_t in, const float* x, int64_t ldx,
                  int64_t batch, const float* bias, float* y, int64_t ldy, int64_t o0,
                  int64_t o1);

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
