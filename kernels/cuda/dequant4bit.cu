// CUDA 4-bit dequantization (NF4/FP4, plain or double-quantized absmax) to fp32/bf16.
// Each thread expands one packed byte (two elements of the same block: blocks are
// even-sized) in a grid-stride loop; out = code[idx] * absmax, one fp32 rounding.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/quant4bit_common.cuh"

namespace qlorad::kernels::cuda {
namespace {

__device__ __forceinline__ void StoreOut(float* out, int64_t i, float v) { out[i] = v; }
__device__ __forceinline__ void StoreOut(uint16_t* out, int64_t i, float v) {
  const __nv_bfloat16 h = __float2bfloat16_rn(v);
  out[i] = *reinterpret_cast<const uint16_t*>(&h);
}

template <typename Out>
__global__ void Dequantize4bitKernel(DeviceWeight4bit w, Out* __restrict__ out) {
  const int64_t bytes = (w.numel + 1) / 2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < bytes;
       i += stride) {
    const unsigned byte = w.packed[i];
    const int64_t e = 2 * i;
    const float s = BlockScale(w.scales, e / w.blocksize);
    StoreOut(out, e, __fmul_rn(CodeValue(w.fp4, byte >> 4), s));
    if (e + 1 < w.numel) StoreOut(out, e + 1, __fmul_rn(CodeValue(w.fp4, byte & 15u), s));
  }
}

template <typename Out>
const char* Launch(const DeviceWeight4bit& w, Out* out, void* stream) {
  if (!ValidWeight(w) || out == nullptr) return "Dequantize4bit (CUDA): invalid arguments";
  if (w.blocksize % 2 != 0) return "Dequantize4bit (CUDA): blocksize must be even";
  constexpr int kThreads = 256;
  const int64_t bytes = (w.numel + 1) / 2;
  const int64_t wanted = (bytes + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(wanted < 65535 * 8 ? wanted : 65535 * 8);
  Dequantize4bitKernel<Out>
      <<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(w, out);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace

const char* Dequantize4bitF32(const DeviceWeight4bit& w, float* out, void* stream) {
  return Launch(w, out, stream);
}

const char* Dequantize4bitBf16(const DeviceWeight4bit& w, uint16_t* out, void* stream) {
  return Launch(w, out, stream);
}

}  // namespace qlorad::kernels::cuda
