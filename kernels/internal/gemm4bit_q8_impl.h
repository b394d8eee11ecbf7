// Internal: scalar, AVX2 and AVX-512 VNNI bodies of Gemm4bitQ8Rows (gemm4bit_q8.h); arguments are the
// public function's, unchecked.
#ifndef QLORAD_KERNELS_INTERNAL_GEMM4BIT_Q8_IMPL_H_
#define QLORAD_KERNELS_INTERNAL_GEMM4BIT_Q8_IMPL_H_

#include <cstdint>

#include "kernels/gemm4bit_q8.h"

namespace qlorad::kernels::internal {

// book[i] = round(127 · code[i]) for the 16 codes of `type`.
void Int8CodeBook(QuantType type, int8_t* book);

// QuantizeQ8Input's bodies; bit-identical (same fp32 operations, ties to even).
void QuantizeQ8Scalar(const float* x, int64_t batch, int64_t in, int8_t* values, float* scales);
void QuantizeQ8Avx2(const float* x, int64_t batch, int64_t in, int8_t* values, float* scales);

void Q8RowsScalar(const Packed4bitView& w, const Q8Input& x, const float* bias, float* y, int64_t ldy, int64_t o0,
                  int64_t o1);
void Q8RowsAvx2(const Packed4bitView& w, const Q8Input& x, const float* bias, float* y, int64_t ldy, int64_t o0,
                int64_t o1);
void Q8RowsAvx512Vnni(const Packed4bitView& w, const Q8Input& x, const float* bias, float* y, int64_t ldy,
                      int64_t o0, int64_t o1);

}  // namespace qlorad::kernels::internal

#endif  // QLORAD_KERNELS_INTERNAL_GEMM4BIT_Q8_IMPL_H_
