// Dispatch and the portable scalar bodies of kernels/matvec.h.
#include "kernels/matvec.h"

#include "kernels/bf16.h"
#include "kernels/cpu_isa.h"
#include "kernels/internal/matvec_impl.h"

namespace qlorad::kernels {
namespace internal {

namespace {

float WeightAt(const WeightMatrix& w, int64_t o, int64_t i) {
  switch (w.format) {
    case WeightFormat::kBf16: return Bf16ToFloat(static_cast<const uint16_t*>(w.data)[o * w.stride + i]);
    case WeightFormat::kInt8RowScaled: return static_cast<float>(static_cast<const int8_t*>(w.data)[o * w.stride + i]);
    case WeightFormat::kF32: break;
  }
  return static_cast<const float*>(w.data)[o * w.stride + i];
}

}  // namespace

void MatvecRowsScalar(const MatvecArgs& a) {
  for (int64_t o = a.row_begin; o < a.row_end; ++o) {
    const float scale = a.w.format == WeightFormat::kInt8RowScaled ? a.w.row_scale[o] : 1.0f;
    for (int b = 0; b < a.batch; ++b) {
      const float* x = a.x + b * a.x_stride;
      float sum = 0.0f;
      for (int64_t i = 0; i < a.w.in; ++i) sum += WeightAt(a.w, o, i) * x[i];
      sum *= scale;
      a.y[b * a.y_stride + o] = a.bias != nullptr ? sum + a.bias[o] : sum;
    }
  }
}

void WeightedRowSumScalar(const WeightMatrix& m, int64_t rows, const float* p, float* out) {
  for (int64_t c = 0; c < m.in; ++c) out[c] = 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const float weight = m.format == WeightFormat::kInt8RowScaled ? p[r] * m.row_scale[r] : p[r];
    for (int64_t c = 0; c < m.in; ++c) out[c] += weight * WeightAt(m, r, c);
  }
}

}  // namespace internal

void MatvecRows(const WeightMatrix& w, const float* x, int64_t x_stride, int batch, const float* bias, float* y,
                int64_t y_stride, int64_t row_begin, int64_t row_end) {
  const internal::MatvecArgs args{w, x, x_stride, batch, bias, y, y_stride, row_begin, row_end};
  switch (ActiveIsa()) {
    case CpuIsa::kAvx512: return internal::MatvecRowsAvx512(args);
    case CpuIsa::kAvx2: return internal::MatvecRowsAvx2(args);
    case CpuIsa::kScalar: break;
  }
  internal::MatvecRowsScalar(args);
}

void MatvecRows(const float* w, int64_t in, int64_t w_stride, const float* x, int64_t x_stride, int batch,
                const float* bias, float* y, int64_t y_stride, int64_t row_begin, int64_t row_end) {
  MatvecRows(WeightMatrix{WeightFormat::kF32, w, in, w_stride, nullptr}, x, x_stride, batch, bias, y, y_stride,
             row_begin, row_end);
}

void WeightedRowSum(const WeightMatrix& m, int64_t rows, const float* p, float* out) {
  if (m.format == WeightFormat::kInt8RowScaled) return internal::WeightedRowSumScalar(m, rows, p, out);
  switch (ActiveIsa()) {
    case CpuIsa::kAvx512: return internal::WeightedRowSumAvx512(m, rows, p, out);
    case CpuIsa::kAvx2: return internal::WeightedRowSumAvx2(m, rows, p, out);
    case CpuIsa::kScalar: break;
  }
  internal::WeightedRowSumScalar(m, rows, p, out);
}

void WeightedRowSum(const float* m, int64_t rows, int64_t cols, int64_t m_stride, const float* p, float* out) {
  WeightedRowSum(WeightMatrix{WeightFormat::kF32, m, cols, m_stride, nullptr}, rows, p, out);
}

}  // namespace qlorad::kernels
