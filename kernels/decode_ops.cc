#include "kernels/decode_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu_isa.h"
#include "kernels/internal/decode_ops_impl.h"
#include "kernels/matvec.h"
#include "kernels/parallel.h"

namespace qlorad::kernels {

namespace {

float SumOfSquares(const float* x, int64_t n) {
  switch (ActiveIsa()) {
    case CpuIsa::kAvx512: return internal::SumOfSquaresAvx512(x, n);
    case CpuIsa::kAvx2: return internal::SumOfSquaresAvx2(x, n);
    case CpuIsa::kScalar: break;
  }
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

// scores[i] = softmax(scale · scores)[i], i < n.
void ScaledSoftmax(float* scores, int64_t n, float scale) {
  switch (ActiveIsa()) {
    case CpuIsa::kAvx512: return internal::ScaledSoftmaxAvx512(scores, n, scale);
    case CpuIsa::kAvx2: return internal::ScaledSoftmaxAvx2(scores, n, scale);
    case CpuIsa::kScalar: break;
  }
  float max_score = -INFINITY;
  for (int64_t s = 0; s < n; ++s) max_score = std::max(max_score, scores[s] * scale);
  float total = 0.0f;
  for (int64_t s = 0; s < n; ++s) {
    scores[s] = std::exp(scores[s] * scale - max_score);
    total += scores[s];
  }
  const float inv_total = 1.0f / total;
  for (int64_t s = 0; s < n; ++s) scores[s] *= inv_total;
}

}  // namespace

void RmsNorm(const float* x, const float* weight, int64_t n, float eps, float* out) {
  const float sum = SumOfSquares(x, n);
  const float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inv);
}

void RopeCosSin(const float* inv_freq, int64_t half, int64_t position, float* cos_sin) {
  const float pos = static_cast<float>(position);
  for (int64_t i = 0; i < half; ++i) {
    const float angle = pos * inv_freq[i];
    cos_sin[2 * i] = std::cos(angle);
    cos_sin[2 * i + 1] = std::sin(angle);
  }
}

void ApplyRopeCosSin(float* x, int64_t heads, int64_t head_dim, const float* cos_sin) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      const float lo = v[i], hi = v[i + half];
      v[i] = lo * c - hi * s;
      v[i + half] = hi * c + lo * s;
    }
  }
}

void SwiGluInPlace(float* gate, const float* up, int64_t n) {
  switch (ActiveIsa()) {
    case CpuIsa::kAvx512: return internal::SwiGluAvx512(gate, up, n);
    case CpuIsa::kAvx2: return internal::SwiGluAvx2(gate, up, n);
    case CpuIsa::kScalar: break;
  }
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void AttendOneQuery(const float* q, const float* keys, const float* values, int64_t length, int64_t d,
                    int64_t row_stride, float scale, float* scores, float* out) {
  MatvecRows(keys, d, row_stride, q, d, 1, nullptr, scores, length, 0, length);
  ScaledSoftmax(scores, length, scale);
  WeightedRowSum(values, length, d, row_stride, scores, out);
}

void CausalAttention(const CausalAttentionArgs& a) {
  const int64_t groups = a.heads / a.kv_heads, rows = a.batch * a.heads * a.tokens;
  // Prefill calls this between OpenBLAS GEMMs (the o projection next): helpers must not linger.
  ParallelFor(rows, 8, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(a.past + a.tokens)) scores.resize(a.past + a.tokens);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t t = row % a.tokens, h = (row / a.tokens) % a.heads, b = row / (a.tokens * a.heads);
      const int64_t kv = b * a.kv_batch_stride + (h / groups) * a.kv_head_stride;
      AttendOneQuery(a.q + b * a.q_batch_stride + h * a.q_head_stride + t * a.q_token_stride, a.k + kv, a.v + kv,
                     a.past + t + 1, a.d, a.kv_token_stride, a.scale, scores.data(),
                     a.out + b * a.out_batch_stride + t * a.out_token_stride + h * a.out_head_stride);
    }
  }, /*helpers_linger=*/false);
}

}  // namespace qlorad::kernels
