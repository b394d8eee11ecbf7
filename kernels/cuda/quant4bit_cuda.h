// CUDA versions of the 4-bit dequantization and the fused small-batch matmul
// (same contracts as quant4bit.h / gemm4bit.h, on device memory). Built only when a
// CUDA compiler is found (target qlorad_kernels_cuda) and linked only into a
// CUDA-enabled libtorch build (QLORAD_TORCH_HAS_CUDA). Torch- and absl-free so that
// nvcc compiles nothing but these kernels.
#ifndef QLORAD_KERNELS_CUDA_QUANT4BIT_CUDA_H_
#define QLORAD_KERNELS_CUDA_QUANT4BIT_CUDA_H_

#include <cstdint>

namespace qlorad::kernels::cuda {

// Device pointers. Plain: absmax != nullptr. Nested (double quant): codes,
// nested_absmax, nested_code (256 floats) != nullptr; absmax = code[q] * nested + offset.
struct DeviceScales {
  const float* absmax = nullptr;
  const uint8_t* codes = nullptr;
  const float* nested_absmax = nullptr;
  const float* nested_code = nullptr;
  float offset = 0.0f;
  int64_t nested_blocksize = 256;
};

struct DeviceWeight4bit {
  bool fp4 = false;                 // false: NF4
  const uint8_t* packed = nullptr;  // (numel + 1) / 2 bytes
  int64_t numel = 0;
  int64_t blocksize = 64;
  DeviceScales scales;
};

// Each returns nullptr on success, else a static error message (launch failure or bad
// arguments). `stream` is a cudaStream_t (nullptr: the legacy default stream).
// out: numel fp32 values, or numel bf16 values (raw uint16 bits) for the Bf16 variant.
const char* Dequantize4bitF32(const DeviceWeight4bit& w, float* out, void* stream);
const char* Dequantize4bitBf16(const DeviceWeight4bit& w, uint16_t* out, void* stream);

// y[b, o] = sum_i x[b, i] * W[o, i] (+ bias[o]); x [batch, in], y [batch, out], fp32.
// One warp per output row; intended for batch <= 8.
const char* Gemv4bitF32(const DeviceWeight4bit& w, int64_t out_features, int64_t in_features,
                        const float* x, int64_t batch, const float* bias, float* y, void* stream);

}  // namespace qlorad::kernels::cuda

#endif  // QLORAD_KERNELS_CUDA_QUANT4BIT_CUDA_H_
