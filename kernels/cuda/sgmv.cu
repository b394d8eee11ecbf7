// Shrink: one warp per (gathered row, rank index) computes a dot product over `in`
// with coalesced reads of x and A. Expand: one thread per (gathered row, output
// column) sums over the segment's rank (<= 64 here, from the workspace) and adds the
// scaled result to y. No atomics: each (row, column) of y is written by one thread.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/sgmv_cuda.h"

namespace qlorad::kernels::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kExpandThreads = 256;

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void Store(float* p, float v) { *p = v; }
__device__ __forceinline__ void Store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

template <typename T>
__global__ void ShrinkKernel(SgmvBatch<T> batch, const T* __restrict__ x, float* __restrict__ workspace) {
  const int lane = threadIdx.x % 32;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (item >= batch.rows * batch.max_rank) return;
  const int64_t p = item / batch.max_rank, j = item % batch.max_rank;
  const int segment = batch.row_segment[p];
  if (j >= batch.ranks[segment]) return;
  const T* a_row = batch.a[segment] + j * batch.in_features;
  const T* x_row = x + static_cast<int64_t>(batch.row_index[p]) * batch.in_features;
  float acc = 0.0f;
  for (int64_t i = lane; i < batch.in_features; i += 32) acc = fmaf(ToFloat(x_row[i]), ToFloat(a_row[i]), acc);
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
  if (lane == 0) workspace[p * batch.max_rank + j] = acc;
}

template <typename T>
__global__ void ExpandKernel(SgmvBatch<T> batch, const float* __restrict__ workspace, T* __restrict__ y) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kExpandThreads + threadIdx.x;
  if (item >= batch.rows * batch.out_features) return;
  const int64_t p = item / batch.out_features, o = item % batch.out_features;
  const int segment = batch.row_segment[p];
  const int rank = batch.ranks[segment];
  const T* b_row = batch.b[segment] + o * rank;
  const float* t = workspace + p * batch.max_rank;
  float acc = 0.0f;
  for (int j = 0; j < rank; ++j) acc = fmaf(t[j], ToFloat(b_row[j]), acc);
  T* out = y + static_cast<int64_t>(batch.row_index[p]) * batch.out_features + o;
  Store(out, ToFloat(*out) + batch.scalings[segment] * acc);
}

template <typename T>
const char* Launch(const SgmvBatch<T>& batch, const T* x, T* y, float* workspace, void* stream) {
  if (batch.rows < 0 || batch.in_features <= 0 || batch.out_features <= 0 || batch.max_rank <= 0)
    return "Sgmv (CUDA): invalid shapes";
  if (batch.rows == 0) return nullptr;  // no adapter rows: nothing to add
  if (x == nullptr || y == nullptr || workspace == nullptr || batch.row_index == nullptr ||
      batch.row_segment == nullptr || batch.a == nullptr || batch.b == nullptr || batch.ranks == nullptr ||
      batch.scalings == nullptr)
    return "Sgmv (CUDA): null argument";
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t shrink_items = batch.rows * batch.max_rank;
  ShrinkKernel<T><<<static_cast<unsigned>((shrink_items + kWarpsPerBlock - 1) / kWarpsPerBlock), kWarpsPerBlock * 32, 0,
                    s>>>(batch, x, workspace);
  const int64_t expand_items = batch.rows * batch.out_features;
  ExpandKernel<T><<<static_cast<unsigned>((expand_items + kExpandThreads - 1) / kExpandThreads), kExpandThreads, 0, s>>>(
      batch, workspace, y);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace

const char* SgmvF32(const SgmvBatch<float>& batch, const float* x, float* y, float* workspace, void* stream) {
  return Launch<float>(batch, x, y, workspace, stream);
}

const char* SgmvBf16(const SgmvBatch<uint16_t>& batch, const uint16_t* x, uint16_t* y, float* workspace, void* stream) {
  SgmvBatch<__nv_bfloat16> typed;
  typed.rows = batch.rows;
  typed.in_features = batch.in_features;
  typed.out_features = batch.out_features;
  typed.max_rank = batch.max_rank;
  typed.row_index = batch.row_index;
  typed.row_segment = batch.row_segment;
  typed.a = reinterpret_cast<const __nv_bfloat16* const*>(batch.a);
  typed.b = reinterpret_cast<const __nv_bfloat16* const*>(batch.b);
  typed.ranks = batch.ranks;
  typed.scalings = batch.scalings;
  return Launch<__nv_bfloat16>(typed, reinterpret_cast<const __nv_bfloat16*>(x), reinterpret_cast<__nv_bfloat16*>(y),
                               workspace, stream);
}

}  // namespace qlorad::kernels::cuda
