#include "core/serve/sgmv_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/cuda/sgmv_cuda.h"

namespace qlorad::serve {
namespace {

at::Tensor ToDevice(const std::vector<int32_t>& v, const c10::Device& device) {
  return at::tensor(v, at::TensorOptions().dtype(at::kInt)).to(device);
}

// The kernel's view of one batch (device arrays built by SgmvCudaAdd).
template <typename T>
kernels::cuda::SgmvBatch<T> Describe(size_t rows, int64_t in, int64_t out, int64_t max_rank, const at::Tensor& index,
                                     const at::Tensor& segments, const at::Tensor& a_ptrs, const at::Tensor& b_ptrs,
                                     const at::Tensor& ranks, const at::Tensor& scalings) {
  kernels::cuda::SgmvBatch<T> b;
  b.rows = static_cast<int64_t>(rows);
  b.in_features = in;
  b.out_features = out;
  b.max_rank = max_rank;
  b.row_index = index.data_ptr<int32_t>();
  b.row_segment = segments.data_ptr<int32_t>();
  b.a = reinterpret_cast<const T* const*>(a_ptrs.data_ptr<int64_t>());
  b.b = reinterpret_cast<const T* const*>(b_ptrs.data_ptr<int64_t>());
  b.ranks = ranks.data_ptr<int32_t>();
  b.scalings = scalings.data_ptr<float>();
  return b;
}

}  // namespace

bool SgmvCudaApplies(const at::Tensor& x, const AdapterGroups& groups) {
  if (!x.is_cuda() || (x.scalar_type() != at::kFloat && x.scalar_type() != at::kBFloat16)) return false;
  for (const auto& [delta, rows] : groups)
    if (delta->a.device() != x.device() || delta->a.scalar_type() != x.scalar_type() || !delta->a.is_contiguous() ||
        delta->b.device() != x.device() || delta->b.scalar_type() != x.scalar_type() || !delta->b.is_contiguous())
      return false;
  return true;
}

at::Tensor SgmvCudaAdd(at::Tensor y, const at::Tensor& x, const AdapterGroups& groups) {
  const int64_t batch = x.size(0), tokens = x.dim() == 3 ? x.size(1) : 1;
  const int64_t in = x.size(-1), out = y.size(-1);
  std::vector<int32_t> row_index, row_segment, ranks;
  std::vector<int64_t> a_ptrs, b_ptrs;
  std::vector<float> scalings;
  int64_t max_rank = 1;
  for (const auto& [delta, rows] : groups) {
    const int32_t segment = static_cast<int32_t>(ranks.size());
    ranks.push_back(static_cast<int32_t>(delta->a.size(0)));
    max_rank = std::max<int64_t>(max_rank, delta->a.size(0));
    a_ptrs.push_back(reinterpret_cast<int64_t>(delta->a.data_ptr()));
    b_ptrs.push_back(reinterpret_cast<int64_t>(delta->b.data_ptr()));
    scalings.push_back(static_cast<float>(delta->scaling));
    for (int64_t row : rows)
      for (int64_t t = 0; t < tokens; ++t) {
        row_index.push_back(static_cast<int32_t>(row * tokens + t));
        row_segment.push_back(segment);
      }
  }
  const c10::Device device = x.device();
  const at::Tensor xs = x.reshape({batch * tokens, in}).contiguous();
  at::Tensor ys = y.reshape({batch * tokens, out}).contiguous();
  at::Tensor index = ToDevice(row_index, device), segments = ToDevice(row_segment, device), rank_t = ToDevice(ranks, device);
  at::Tensor a_t = at::tensor(a_ptrs, at::kLong).to(device), b_t = at::tensor(b_ptrs, at::kLong).to(device);
  at::Tensor scale_t = at::tensor(scalings, at::kFloat).to(device);
  at::Tensor workspace = at::empty({static_cast<int64_t>(row_index.size()) * max_rank}, x.options().dtype(at::kFloat));
  const c10::cuda::CUDAGuard on_device(device);  // the loop thread's current device may be another GPU
  void* stream = at::cuda::getCurrentCUDAStream(device.index()).stream();
  const char* err = nullptr;
  if (x.scalar_type() == at::kFloat) {
    auto batch_args = Describe<float>(row_index.size(), in, out, max_rank, index, segments, a_t, b_t, rank_t, scale_t);
    err = kernels::cuda::SgmvF32(batch_args, xs.data_ptr<float>(), ys.data_ptr<float>(), workspace.data_ptr<float>(),
                                 stream);
  } else {
    auto batch_args = Describe<uint16_t>(row_index.size(), in, out, max_rank, index, segments, a_t, b_t, rank_t, scale_t);
    err = kernels::cuda::SgmvBf16(batch_args, reinterpret_cast<const uint16_t*>(xs.data_ptr()),
                                  reinterpret_cast<uint16_t*>(ys.data_ptr()), workspace.data_ptr<float>(), stream);
  }
  TORCH_CHECK(err == nullptr, "SGMV (CUDA): ", err);
  return ys.view(y.sizes());
}

}  // namespace qlorad::serve
