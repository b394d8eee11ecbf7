// Run-time device selection: "cpu", "cuda", "cuda:N" or "auto" (first CUDA
// device when libtorch has CUDA and one is present, else CPU).
#ifndef QLORAD_CORE_MODEL_DEVICE_H_
#define QLORAD_CORE_MODEL_DEVICE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "absl/status/statusor.h"

namespace qlorad {

absl::StatusOr<c10::Device> ParseDevice(const std::string& spec);

// The devices this process can use: "cuda:0".."cuda:N-1" when libtorch has CUDA and
// GPUs are visible, then "cpu".
std::vector<std::string> AvailableDevices();

// Compute dtype for a device: fp32 on CPU (bf16 matmul is ~25x slower there),
// bf16 on CUDA. "f32"/"bf16"/"f16" override; "" or "auto" picks the default.
absl::StatusOr<c10::ScalarType> ParseComputeDType(const std::string& spec, const c10::Device& device);

struct DeviceMemory {
  int64_t used_bytes = 0;   // reserved by libtorch's caching allocator on the device
  int64_t total_bytes = 0;  // the device's capacity
};
// For a CUDA device of a CUDA-enabled build; nullopt for the CPU (no accelerator) or
// when this build's libtorch has no CUDA.
std::optional<DeviceMemory> QueryDeviceMemory(const c10::Device& device);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_DEVICE_H_
