// Dense fp32 kernels for batch-1..8 decode on the CPU (no torch): the row-major
// matrix-vector products that dominate a decode step, and the small vector ops
// around them. Every kernel works on a caller-chosen row range so that several
// matrices (q/k/v, gate/up) can share one ParallelFor; none allocates. The
// instruction set is chosen at run time (cpu_isa.h); results equal a plain fp32
// dot product up to summation order.
#ifndef QLORAD_KERNELS_MATVEC_H_
#define QLORAD_KERNELS_MATVEC_H_

#include <cstdint>

namespace qlorad::kernels {

// Most batch rows one MatvecRows call serves per pass over W.
inline constexpr int kMatvecMaxBatch = 8;

// How a weight matrix is stored. Reduced formats are for serving copies of a layer
// (e.g. the vocabulary head, --serve-head): fewer bytes streamed per decoded token.
enum class WeightFormat : uint8_t {
  kF32,            // float
  kBf16,           // bfloat16 bits (uint16_t), exact widening to fp32
  kInt8RowScaled,  // int8_t codes; w[o, i] = row_scale[o] · code[o, i]
};

// A row-major [rows, stride] matrix of `format` elements (in <= stride used per row).
struct WeightMatrix {
  WeightFormat format = WeightFormat::kF32;
  const void* data = nullptr;
  int64_t in = 0, stride = 0;
  const float* row_scale = nullptr;  // kInt8RowScaled only
};

// As MatvecRows below, for any WeightFormat.
void MatvecRows(const WeightMatrix& w, const float* x, int64_t x_stride, int batch, const float* bias, float* y,
                int64_t y_stride, int64_t row_begin, int64_t row_end);

// For o in [row_begin, row_end) and b < batch (1..kMatvecMaxBatch):
//   y[b * y_stride + o] = dot(W[o * w_stride, 0:in], x[b * x_stride, 0:in]) (+ bias[o] when bias != nullptr).
// Rows of W are w_stride >= in floats apart. x rows must not alias y.
void MatvecRows(const float* w, int64_t in, int64_t w_stride, const float* x, int64_t x_stride, int batch,
                const float* bias, float* y, int64_t y_stride, int64_t row_begin, int64_t row_end);

// out[0:cols] = sum_{r < rows} p[r] · m[r * m_stride, 0:cols]  (attention's probabilities × V).
void WeightedRowSum(const float* m, int64_t rows, int64_t cols, int64_t m_stride, const float* p, float* out);

// The same over a matrix of any WeightFormat (kInt8RowScaled rows scaled by row_scale):
// cols = m.in, m_stride = m.stride (e.g. a LoRA Bᵀ [rank, out], so that the low-rank
// product is a few streaming row passes). Vector code for kF32 and kBf16.
void WeightedRowSum(const WeightMatrix& m, int64_t rows, const float* p, float* out);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_MATVEC_H_
