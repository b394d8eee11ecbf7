// Internal: scalar, AVX2 and AVX-512 VNNI bodies of Gemm4bitQ8Rows (gemm4bit_q8.h); arguments are the
// public function's, unchecked.
#ifndef QLORAD_KERNELS_INTERNAL_GEMM4BIT_Q8_IMPL_H_
#define QLORAD_KERNELS_INTERNAL_GEMM4BIT_Q8_IMPL_H_

#include <cstdint>

#include "kernels/gemm4bit_q8.h"

namespace qlorad::kernels::internal {

// Whether weight rows of `in` columns are read one row at a time rather than in tiles of
// several rows sharing each x load. Tiles save the x-side work but read several streams a
// row apart; from 512 packed bytes a row (in >= 1024) the interleaved streams cost more
// than they save (measured with `nf4_bench --only-q8 --threads 1` on AVX-512 VNNI: [768,
// 2048] 11.7 → 17.8 GB/s and [4096, 4096] 11.0 → 13.3–18.9 as single rows, while [2048,
// 768] falls 18.8 → 15.4, tests/bench/RESULTS.md).
inline bool Q8SingleRowTiles(int64_t in) { return in >= 1024; }

// book[i] = round(127 · code[i]) for the 16 codes of `type`: 16 bytes, 16-byte aligned,
// computed once per type (the kernels are called several times per projection).
const int8_t* Int8CodeBook(QuantType type);

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
