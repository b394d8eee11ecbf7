// CUDA segmented gather matrix-vector products for mixed-adapter LoRA batches (the
// SGMV pattern of Punica/S-LoRA): the rows of one batch are grouped by adapter and
// each group applies its own A [r, in] and B [out, r] in two launches over the whole
// batch — shrink (t = x·Aᵀ) then expand (y += scaling · t·Bᵀ). Rows without an adapter
// are simply not listed and cost nothing. Accumulation is fp32 for every element type.
//
// Same contract as the CPU path in core/serve/multi_lora_linear.cc. Built only when a
// CUDA compiler is found (qlorad_kernels_cuda); torch- and absl-free.
#ifndef QLORAD_KERNELS_CUDA_SGMV_CUDA_H_
#define QLORAD_KERNELS_CUDA_SGMV_CUDA_H_

#include <cstdint>

namespace qlorad::kernels::cuda {

// Device arrays describing one mixed batch. Gathered row p (0 <= p < rows) is batch
// row row_index[p] and uses segment row_segment[p]; segment s has rank ranks[s]
// (<= max_rank), weights a[s] ([ranks[s], in], row-major) and b[s] ([out, ranks[s]]),
// and scale scalings[s].
template <typename T>
struct SgmvBatch {
  int64_t rows = 0;
  int64_t in_features = 0, out_features = 0, max_rank = 0;
  const int32_t* row_index = nullptr;
  const int32_t* row_segment = nullptr;
  const T* const* a = nullptr;
  const T* const* b = nullptr;
  const int32_t* ranks = nullptr;
  const float* scalings = nullptr;
};

// x [batch, in], y [batch, out] (updated in place), workspace: rows * max_rank floats.
// Returns nullptr on success, else a static error message. T: float or __nv_bfloat16
// (passed as uint16_t bits through this header).
const char* SgmvF32(const SgmvBatch<float>& batch, const float* x, float* y, float* workspace, void* stream);
const char* SgmvBf16(const SgmvBatch<uint16_t>& batch, const uint16_t* x, uint16_t* y, float* workspace, void* stream);

}  // namespace qlorad::kernels::cuda

#endif  // QLORAD_KERNELS_CUDA_SGMV_CUDA_H_
