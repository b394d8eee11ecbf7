// CUDA fused 4-bit matmul for small batches: one warp per output row; lanes stride over
// the row's packed bytes, decode two weights per byte in registers, FMA them with every
// batch row of x and reduce with warp shuffles. W is never materialized.
#include <cuda_runtime.h>

#include "kernels/cuda/quant4bit_common.cuh"

namespace qlorad::kernels::cuda {
namespace {

constexpr int kMaxBatch = 8;
constexpr int kWarpsPerBlock = 4;

__global__ void Gemv4bitKernel(DeviceWeight4bit w, int64_t out_features, int64_t in_features,
                               const float* __restrict__ x, int batch,
                               const float* __restrict__ bias, float* __restrict__ y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= out_features) return;
  float acc[kMaxBatch];
#pragma unroll
  for (int b = 0; b < kMaxBatch; ++b) acc[b] = 0.0f;
  const int64_t first = row * in_features;
  // Element i of the row is flattened element first + i: byte (first + i) / 2, high
  // nibble when even. Lanes take consecutive elements for coalesced byte reads.
  for (int64_t i = lane; i < in_features; i += 32) {
    const int64_t e = first + i;
    const unsigned byte = w.packed[e / 2];
    const unsigned idx = (e & 1) ? (byte & 15u) : (byte >> 4);
    const float wv = __fmul_rn(CodeValue(w.fp4, idx), BlockScale(w.scales, e / w.blocksize));
#pragma unroll
    for (int b = 0; b < kMaxBatch; ++b) {
      if (b < batch) acc[b] = fmaf(wv, x[b * in_features + i], acc[b]);
    }
  }
#pragma unroll
  for (int b = 0; b < kMaxBatch; ++b) {
    float v = acc[b];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0 && b < batch) y[b * out_features + row] = v + (bias ? bias[row] : 0.0f);
  }
}

}  // namespace

const char* Gemv4bitF32(const DeviceWeight4bit& w, int64_t out_features, int64_t in_features,
                        const float* x, int64_t batch, const float* bias, float* y, void* stream) {
  if (!ValidWeight(w) || x == nullptr || y == nullptr) return "Gemv4bit (CUDA): invalid arguments";
  if (out_features <= 0 || in_features <= 0 || out_features * in_features != w.numel)
    return "Gemv4bit (CUDA): weight shape does not match the quantized element count";
  if (batch <= 0) return "Gemv4bit (CUDA): empty batch";
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const unsigned grid =
      static_cast<unsigned>((out_features + kWarpsPerBlock - 1) / kWarpsPerBlock);
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxBatch) {
    const int nb = static_cast<int>(batch - b0 < kMaxBatch ? batch - b0 : kMaxBatch);
    Gemv4bitKernel<<<grid, kWarpsPerBlock * 32, 0, s>>>(w, out_features, in_features,
                                                        x + b0 * in_features, nb, bias,
                                                        y + b0 * out_features);
  }
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace qlorad::kernels::cuda
