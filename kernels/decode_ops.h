// The small per-token operations of a decoder step around the matrix-vector
// products (matvec.h): RMSNorm, rotary embedding, SwiGLU and one query's attention
// over a contiguous key/value cache. fp32, no allocation, no threads of their own.
#ifndef QLORAD_KERNELS_DECODE_OPS_H_
#define QLORAD_KERNELS_DECODE_OPS_H_

#include <cstdint>

namespace qlorad::kernels {

// out[i] = weight[i] · x[i] / sqrt(mean(x²) + eps), i < n (out may alias x).
void RmsNorm(const float* x, const float* weight, int64_t n, float eps, float* out);

// Hugging Face rotate-half RoPE on `heads` vectors of head_dim values laid out back
// to back, in place: angle_i = position · inv_freq[i] for i < head_dim / 2.
void ApplyRope(float* x, int64_t heads, int64_t head_dim, const float* inv_freq, int64_t position);

// gate[i] = silu(gate[i]) · up[i], i < n.
void SwiGluInPlace(float* gate, const float* up, int64_t n);

// out[0:d] = softmax(keys · q · scale) · values over `length` cached positions, where
// keys and values are [length, d] row-major. scores needs `length` floats.
void AttendOneQuery(const float* q, const float* keys, const float* values, int64_t length, int64_t d,
                    float scale, float* scores, float* out);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_DECODE_OPS_H_
