// The small per-token operations of a decoder step around the matrix-vector
// products (matvec.h): RMSNorm, rotary embedding, SwiGLU and one query's attention
// over a contiguous key/value cache. fp32, no allocation, no threads of their own.
// RMSNorm's sum of squares, SwiGLU and the attention softmax run as AVX-512 or AVX2
// bodies where the CPU has them (cpu_isa.h); their vector exp is within 2 ulp of expf
// (decode_ops_impl.h).
#ifndef QLORAD_KERNELS_DECODE_OPS_H_
#define QLORAD_KERNELS_DECODE_OPS_H_

#include <cstdint>

namespace qlorad::kernels {

// out[i] = weight[i] · x[i] / sqrt(mean(x²) + eps), i < n (out may alias x).
void RmsNorm(const float* x, const float* weight, int64_t n, float eps, float* out);

// Hugging Face rotate-half RoPE on `heads` vectors of head_dim values laid out back to
// back, in place, at one position (one table serves every layer of a decoder step):
// RopeCosSin fills cos_sin[2i] = cos(angle_i), cos_sin[2i + 1] = sin(angle_i) with
// angle_i = position · inv_freq[i], i < half = head_dim / 2; ApplyRopeCosSin rotates.
void RopeCosSin(const float* inv_freq, int64_t half, int64_t position, float* cos_sin);
void ApplyRopeCosSin(float* x, int64_t heads, int64_t head_dim, const float* cos_sin);

// gate[i] = silu(gate[i]) · up[i], i < n.
void SwiGluInPlace(float* gate, const float* up, int64_t n);

// out[0:d] = softmax(keys · q · scale) · values over `length` cached positions, where
// keys and values are [length, d] with rows `row_stride` apart. scores needs `length` floats.
void AttendOneQuery(const float* q, const float* keys, const float* values, int64_t length, int64_t d,
                    int64_t row_stride, float scale, float* scores, float* out);

// Causal self-attention of `tokens` new queries per (batch row, head) over `past` cached
// positions plus themselves, without a tokens × keys matrix: query t of a row attends
// keys [0, past + t] through AttendOneQuery. Element strides; every row of d values is
// contiguous. Query head h reads key/value head h / (heads / kv_heads). Threaded with
// ParallelFor over (row, head, query); per-thread score scratch is reused across calls.
struct CausalAttentionArgs {
  const float* q;  // [batch, heads, tokens, d]
  int64_t q_batch_stride, q_head_stride, q_token_stride;
  const float* k;  // [batch, kv_heads, past + tokens, d]
  const float* v;
  int64_t kv_batch_stride, kv_head_stride, kv_token_stride;
  float* out;  // [batch, tokens, heads, d]
  int64_t out_batch_stride, out_token_stride, out_head_stride;
  int64_t batch, heads, kv_heads, tokens, past, d;
  float scale;
};
void CausalAttention(const CausalAttentionArgs& a);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_DECODE_OPS_H_
