// Device helpers shared by the 4-bit CUDA kernels: code books and scale decoding.
#ifndef QLORAD_KERNELS_CUDA_QUANT4BIT_COMMON_CUH_
#define QLORAD_KERNELS_CUDA_QUANT4BIT_COMMON_CUH_

#include <cstdint>

#include "kernels/cuda/quant4bit_cuda.h"

namespace qlorad::kernels::cuda {

// Same values as kernels/quant_tables.cc (kNf4Code, kFp4Code).
__device__ __constant__ static const float kNf4CodeDev[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
__device__ __constant__ static const float kFp4CodeDev[16] = {
    0.0f, 0.005208333333f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
    -0.0f, -0.005208333333f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f};

__device__ __forceinline__ float CodeValue(bool fp4, unsigned idx) {
  return fp4 ? kFp4CodeDev[idx & 15u] : kNf4CodeDev[idx & 15u];
}

// absmax of block b; two separate fp32 roundings when nested (no FMA), as on the CPU.
__device__ __forceinline__ float BlockScale(const DeviceScales& s, int64_t b) {
  if (s.codes == nullptr) return s.absmax[b];
  const float t = __fmul_rn(s.nested_code[s.codes[b]], s.nested_absmax[b / s.nested_blocksize]);
  return __fadd_rn(t, s.offset);
}

inline bool ValidWeight(const DeviceWeight4bit& w) {
  if (w.packed == nullptr || w.numel <= 0 || w.blocksize <= 0) return false;
  if (w.scales.codes == nullptr) return w.scales.absmax != nullptr;
  return w.scales.nested_absmax != nullptr && w.scales.nested_code != nullptr &&
         w.scales.nested_blocksize > 0;
}

}  // namespace qlorad::kernels::cuda

#endif  // QLORAD_KERNELS_CUDA_QUANT4BIT_COMMON_CUH_
