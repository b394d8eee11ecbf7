#include "core/model/device.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#if defined(QLORAD_MODEL_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

#include "absl/strings/str_cat.h"
#include "core/util/torch_status.h"

namespace qlorad {

absl::StatusOr<c10::Device> ParseDevice(const std::string& spec) {
  const bool has_cuda = at::hasCUDA();
  if (spec.empty() || spec == "auto") return has_cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  auto device = CatchTorchErrors("device", [&] { return absl::StatusOr<c10::Device>(c10::Device(spec)); });
  if (!device.ok() || (device->type() != c10::kCPU && device->type() != c10::kCUDA))
    return absl::InvalidArgumentError(absl::StrCat("--device '", spec, "' is not one of cpu, cuda, cuda:N, auto"));
  if (device->is_cuda() && !has_cuda)
    return absl::FailedPreconditionError(absl::StrCat(
        "--device ", spec, ": this build's libtorch has no CUDA or no GPU is visible (hint: build against a CUDA "
        "libtorch with -DCMAKE_PREFIX_PATH=<torch cmake prefix>, or use --device cpu)"));
  return *device;
}

absl::StatusOr<c10::ScalarType> ParseComputeDType(const std::string& spec, const c10::Device& device) {
  if (spec.empty() || spec == "auto") return device.is_cuda() ? c10::kBFloat16 : c10::kFloat;
  if (spec == "f32" || spec == "float32") return c10::kFloat;
  if (spec == "bf16" || spec == "bfloat16") return c10::kBFloat16;
  if (spec == "f16" || spec == "float16") return c10::kHalf;
  return absl::InvalidArgumentError(absl::StrCat("compute dtype '", spec, "' is not one of f32, bf16, f16, auto"));
}

std::optional<DeviceMemory> QueryDeviceMemory(const c10::Device& device) {
#if defined(QLORAD_MODEL_WITH_CUDA)
  if (!device.is_cuda() || !at::hasCUDA()) return std::nullopt;
  const int index = device.has_index() ? device.index() : 0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  size_t free = 0, total = 0;
  if (cudaSetDevice(index) != cudaSuccess || cudaMemGetInfo(&free, &total) != cudaSuccess) return std::nullopt;
  return DeviceMemory{stats.reserved_bytes[0].current, static_cast<int64_t>(total)};  // [0]: StatType::AGGREGATE
#else
  (void)device;
  return std::nullopt;
#endif
}

std::vector<std::string> AvailableDevices() {
  std::vector<std::string> devices;
  const int gpus = at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0;
  for (int i = 0; i < gpus; ++i) devices.push_back(absl::StrCat("cuda:", i));
  devices.push_back("cpu");
  return devices;
}

}  // namespace qlorad
