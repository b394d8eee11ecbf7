// The CUDA path of MultiLoraLinearLayer: every adapter group of a batch in two kernel
// launches (kernels/cuda/sgmv_cuda.h). Compiled only with a CUDA libtorch and the
// CUDA kernels (QLORAD_SERVE_WITH_CUDA); otherwise the CPU grouped matmuls run.
#ifndef QLORAD_CORE_SERVE_SGMV_CUDA_H_
#define QLORAD_CORE_SERVE_SGMV_CUDA_H_

#include <map>
#include <vector>

#include <ATen/ATen.h>

#include "core/serve/serving_adapter.h"

namespace qlorad::serve {

// Batch rows per adapter module delta.
using AdapterGroups = std::map<const ModuleDelta*, std::vector<int64_t>>;

// True when the CUDA kernels can take this call: x on a CUDA device in fp32 or bf16,
// every delta in x's dtype on x's device.
bool SgmvCudaApplies(const at::Tensor& x, const AdapterGroups& groups);

// y (the base output, [B, T, out] or [B, out], contiguous) += each group's LoRA delta
// of x ([B, T, in] or [B, in]); returns y.
at::Tensor SgmvCudaAdd(at::Tensor y, const at::Tensor& x, const AdapterGroups& groups);

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_SGMV_CUDA_H_
