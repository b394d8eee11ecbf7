#include "core/model/tensor_io.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {
namespace {

struct DTypePair {
  DType dtype;
  at::ScalarType type;
};
constexpr DTypePair kPairs[] = {
    {DType::kBool, at::kBool}, {DType::kU8, at::kByte},    {DType::kI8, at::kChar},   {DType::kI16, at::kShort},
    {DType::kF16, at::kHalf},  {DType::kBF16, at::kBFloat16}, {DType::kI32, at::kInt}, {DType::kF32, at::kFloat},
    {DType::kF64, at::kDouble}, {DType::kI64, at::kLong},
};

// view (the mapped bytes of `info`) converted to dtype on device, in chunks of rows whose
// source pages are released as soon as they are copied: the source is never resident
// whole (the embedding of a 128K vocabulary is 1 GB in bf16), so converting a tensor
// costs its output plus one chunk.
at::Tensor CopyReleasingSource(const at::Tensor& view, const SafetensorsFile& file, const TensorInfo& info,
                               const c10::Device& device, at::ScalarType dtype) {
  constexpr int64_t kChunkBytes = int64_t{16} << 20;
  const int64_t bytes = static_cast<int64_t>(info.ByteSize());
  if (view.dim() == 0 || view.size(0) <= 1 || bytes <= kChunkBytes) {
    at::Tensor out = view.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
    file.ReleasePages(info);
    return out;
  }
  at::Tensor out = at::empty(view.sizes(), view.options().device(device).dtype(dtype));
  const int64_t rows = view.size(0), row_bytes = bytes / rows;
  const int64_t step = std::max<int64_t>(1, kChunkBytes / row_bytes);
  TensorInfo chunk = info;
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    const int64_t n = std::min(step, rows - r0);
    out.narrow(0, r0, n).copy_(view.narrow(0, r0, n));
    chunk.begin = info.begin + static_cast<uint64_t>(r0 * row_bytes);
    chunk.end = chunk.begin + static_cast<uint64_t>(n * row_bytes);
    file.ReleasePages(chunk);
  }
  return out;
}

}  // namespace

absl::StatusOr<at::ScalarType> ToScalarType(DType dtype) {
  for (const auto& pair : kPairs)
    if (pair.dtype == dtype) return pair.type;
  return absl::UnimplementedError(absl::StrCat("dtype ", DTypeName(dtype), " has no libtorch 1.13 equivalent"));
}

absl::StatusOr<DType> ToDType(at::ScalarType type) {
  for (const auto& pair : kPairs)
    if (pair.type == type) return pair.dtype;
  return absl::UnimplementedError(absl::StrCat("tensor type ", c10::toString(type), " cannot be stored in safetensors"));
}

absl::StatusOr<at::Tensor> ViewTensor(const SafetensorsFile& file, const TensorInfo& info,
                                      std::shared_ptr<const void> owner) {
  QLORAD_ASSIGN_OR_RETURN(at::ScalarType type, ToScalarType(info.dtype));
  auto data = file.Data(info);
  void* ptr = const_cast<uint8_t*>(data.data());  // mapping is private copy-on-write
  return CatchTorchErrors(absl::StrCat("viewing tensor '", info.name, "'"), [&]() -> absl::StatusOr<at::Tensor> {
    return at::from_blob(ptr, info.shape, [owner](void*) {}, at::TensorOptions().dtype(type));
  });
}

absl::Status CheckTensorShape(const Checkpoint::Entry& entry, const std::string& name,
                              const std::vector<int64_t>& expected_shape) {
  if (entry.info->shape == expected_shape) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "tensor '", name, "' in '", entry.file->path(), "' has shape ", entry.info->ShapeString(), ", expected [",
      absl::StrJoin(expected_shape, ", "), "] (hint: config.json does not match the weights?)"));
}

absl::StatusOr<at::Tensor> LoadTensor(const std::shared_ptr<const Checkpoint>& checkpoint, const std::string& name,
                                      const std::vector<int64_t>& expected_shape, const c10::Device& device,
                                      at::ScalarType dtype) {
  QLORAD_ASSIGN_OR_RETURN(Checkpoint::Entry entry, checkpoint->Get(name));
  QLORAD_RETURN_IF_ERROR(CheckTensorShape(entry, name, expected_shape));
  if (entry.info->dtype != DType::kF32 && entry.info->dtype != DType::kBF16 && entry.info->dtype != DType::kF16 &&
      entry.info->dtype != DType::kF64)
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has dtype ", DTypeName(entry.info->dtype),
                                                   "; model weights must be F32, F16, BF16 or F64"));
  QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*entry.file, *entry.info, checkpoint));
  return CatchTorchErrors(absl::StrCat("loading tensor '", name, "'"), [&]() -> absl::StatusOr<at::Tensor> {
    if (device.is_cpu() && view.scalar_type() == dtype) return view;
    return CopyReleasingSource(view, *entry.file, *entry.info, device, dtype);
  });
}

absl::StatusOr<std::vector<TensorSpec>> SpecsOf(const std::vector<NamedTensor>& tensors) {
  std::vector<TensorSpec> specs;
  for (const NamedTensor& named : tensors) {
    QLORAD_ASSIGN_OR_RETURN(DType dtype, ToDType(named.tensor.scalar_type()));
    specs.push_back({named.name, dtype, named.tensor.sizes().vec()});
  }
  return specs;
}

TensorFiller FillerOf(const std::vector<NamedTensor>& tensors) {
  return [&tensors](size_t index, absl::Span<uint8_t> out) {
    return CatchTorchErrors("writing tensor", [&] {
      at::Tensor cpu = tensors[index].tensor.to(at::kCPU).contiguous();
      TORCH_CHECK(static_cast<size_t>(cpu.nbytes()) == out.size(), "size mismatch for ", tensors[index].name);
      std::memcpy(out.data(), cpu.data_ptr(), out.size());
    });
  };
}

}  // namespace qlorad
