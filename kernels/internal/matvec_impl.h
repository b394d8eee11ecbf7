// Per-ISA bodies behind kernels/matvec.h; only matvec.cc calls them.
#ifndef QLORAD_KERNELS_INTERNAL_MATVEC_IMPL_H_
#define QLORAD_KERNELS_INTERNAL_MATVEC_IMPL_H_

#include <cstdint>

#include "kernels/matvec.h"

namespace qlorad::kernels::internal {

struct MatvecArgs {
  WeightMatrix w;
  const float* x;
  int64_t x_stride;
  int batch;
  const float* bias;
  float* y;
  int64_t y_stride;
  int64_t row_begin, row_end;
};

void MatvecRowsScalar(const MatvecArgs& a);
void MatvecRowsAvx2(const MatvecArgs& a);
void MatvecRowsAvx512(const MatvecArgs& a);

// Columns m.in, rows m.stride elements apart; the vector bodies take kF32 and kBf16 only.
void WeightedRowSumScalar(const WeightMatrix& m, int64_t rows, const float* p, float* out);
void WeightedRowSumAvx2(const WeightMatrix& m, int64_t rows, const float* p, float* out);
void WeightedRowSumAvx512(const WeightMatrix& m, int64_t rows, const float* p, float* out);

}  // namespace qlorad::kernels::internal

#endif  // QLORAD_KERNELS_INTERNAL_MATVEC_IMPL_H_
