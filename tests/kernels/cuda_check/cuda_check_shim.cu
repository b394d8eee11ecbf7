// C ABI over qlorad's CUDA kernels for check_cuda_kernels.py (ctypes): every pointer
// is a device address passed as int64 (torch's Tensor.data_ptr()), every call returns
// nullptr on success or the kernel wrapper's static error message. Built together with
// kernels/cuda/*.cu into one shared library by deploy/gpu-check.sh (nvcc -std=c++17
// -arch=sm_90 -shared -Xcompiler -fPIC -I<repo> kernels/cuda/*.cu this file).
// A test tool only (not linked into qlorad); no torch, no absl.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/quant4bit_cuda.h"
#include "kernels/cuda/sgmv_cuda.h"

namespace {

namespace qk = qlorad::kernels::cuda;

template <typename T>
T* Ptr(int64_t address) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(address));
}

// absmax != 0: plain scales; else codes / nested_absmax / nested_code (double quant).
qk::DeviceWeight4bit Weight(int fp4, int64_t packed, int64_t numel, int64_t blocksize,
                            int64_t absmax, int64_t codes, int64_t nested_absmax,
                            int64_t nested_code, float offset, int64_t nested_blocksize) {
  qk::DeviceWeight4bit w;
  w.fp4 = fp4 != 0;
  w.packed = Ptr<const uint8_t>(packed);
  w.numel = numel;
  w.blocksize = blocksize;
  w.scales.absmax = Ptr<const float>(absmax);
  w.scales.codes = Ptr<const uint8_t>(codes);
  w.scales.nested_absmax = Ptr<const float>(nested_absmax);
  w.scales.nested_code = Ptr<const float>(nested_code);
  w.scales.offset = offset;
  w.scales.nested_blocksize = nested_blocksize;
  return w;
}

template <typename T>
qk::SgmvBatch<T> Batch(int64_t rows, int64_t in_features, int64_t out_features, int64_t max_rank,
                       int64_t row_index, int64_t row_segment, int64_t a_ptrs, int64_t b_ptrs,
                       int64_t ranks, int64_t scalings) {
  qk::SgmvBatch<T> batch;
  batch.rows = rows;
  batch.in_features = in_features;
  batch.out_features = out_features;
  batch.max_rank = max_rank;
  batch.row_index = Ptr<const int32_t>(row_index);
  batch.row_segment = Ptr<const int32_t>(row_segment);
  batch.a = Ptr<const T* const>(a_ptrs);  // device array of device pointers
  batch.b = Ptr<const T* const>(b_ptrs);
  batch.ranks = Ptr<const int32_t>(ranks);
  batch.scalings = Ptr<const float>(scalings);
  return batch;
}

}  // namespace

extern "C" {

// Waits for the device; the first pending asynchronous error, if any (sticky errors
// such as an illegal address included).
const char* qc_synchronize() {
  const cudaError_t err = cudaDeviceSynchronize();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

const char* qc_dequantize_f32(int fp4, int64_t packed, int64_t numel, int64_t blocksize,
                              int64_t absmax, int64_t codes, int64_t nested_absmax,
                              int64_t nested_code, float offset, int64_t nested_blocksize,
                              int64_t out, int64_t stream) {
  return qk::Dequantize4bitF32(Weight(fp4, packed, numel, blocksize, absmax, codes, nested_absmax,
                                      nested_code, offset, nested_blocksize),
                               Ptr<float>(out), Ptr<void>(stream));
}

const char* qc_dequantize_bf16(int fp4, int64_t packed, int64_t numel, int64_t blocksize,
                               int64_t absmax, int64_t codes, int64_t nested_absmax,
                               int64_t nested_code, float offset, int64_t nested_blocksize,
                               int64_t out, int64_t stream) {
  return qk::Dequantize4bitBf16(Weight(fp4, packed, numel, blocksize, absmax, codes,
                                       nested_absmax, nested_code, offset, nested_blocksize),
                                Ptr<uint16_t>(out), Ptr<void>(stream));
}

const char* qc_gemv_f32(int fp4, int64_t packed, int64_t numel, int64_t blocksize, int64_t absmax,
                        int64_t codes, int64_t nested_absmax, int64_t nested_code, float offset,
                        int64_t nested_blocksize, int64_t out_features, int64_t in_features,
                        int64_t x, int64_t batch, int64_t bias, int64_t y, int64_t stream) {
  return qk::Gemv4bitF32(Weight(fp4, packed, numel, blocksize, absmax, codes, nested_absmax,
                                nested_code, offset, nested_blocksize),
                         out_features, in_features, Ptr<const float>(x), batch,
                         Ptr<const float>(bias), Ptr<float>(y), Ptr<void>(stream));
}

const char* qc_sgmv_f32(int64_t rows, int64_t in_features, int64_t out_features, int64_t max_rank,
                        int64_t row_index, int64_t row_segment, int64_t a_ptrs, int64_t b_ptrs,
                        int64_t ranks, int64_t scalings, int64_t x, int64_t y, int64_t workspace,
                        int64_t stream) {
  return qk::SgmvF32(Batch<float>(rows, in_features, out_features, max_rank, row_index,
                                  row_segment, a_ptrs, b_ptrs, ranks, scalings),
                     Ptr<const float>(x), Ptr<float>(y), Ptr<float>(workspace), Ptr<void>(stream));
}

const char* qc_sgmv_bf16(int64_t rows, int64_t in_features, int64_t out_features,
                         int64_t max_rank, int64_t row_index, int64_t row_segment, int64_t a_ptrs,
                         int64_t b_ptrs, int64_t ranks, int64_t scalings, int64_t x, int64_t y,
                         int64_t workspace, int64_t stream) {
  return qk::SgmvBf16(Batch<uint16_t>(rows, in_features, out_features, max_rank, row_index,
                                      row_segment, a_ptrs, b_ptrs, ranks, scalings),
                      Ptr<const uint16_t>(x), Ptr<uint16_t>(y), Ptr<float>(workspace),
                      Ptr<void>(stream));
}

}  // extern "C"
