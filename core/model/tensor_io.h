// Bridges safetensors bytes and at::Tensor in both directions.
#ifndef QLORAD_CORE_MODEL_TENSOR_IO_H_
#define QLORAD_CORE_MODEL_TENSOR_IO_H_

#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/safetensors_writer.h"

namespace qlorad {

absl::StatusOr<at::ScalarType> ToScalarType(DType dtype);
absl::StatusOr<DType> ToDType(at::ScalarType type);

// A CPU tensor viewing the tensor's bytes in the mapping, no copy. `owner`
// (may be null) is kept alive as long as the tensor storage is.
absl::StatusOr<at::Tensor> ViewTensor(const SafetensorsFile& file, const TensorInfo& info,
                                      std::shared_ptr<const void> owner = nullptr);

// OK if the checkpoint tensor `entry` (named `name`) has `expected_shape`; else
// INVALID_ARGUMENT naming the tensor, its file, both shapes and a hint.
absl::Status CheckTensorShape(const Checkpoint::Entry& entry, const std::string& name,
                              const std::vector<int64_t>& expected_shape);

// Reads `name` from `checkpoint`, checks its shape equals `expected_shape`
// (error names the tensor, both shapes and a hint), and returns it on `device`
// in `dtype`. On CPU with an unchanged dtype the result is a zero-copy view that
// keeps `checkpoint` alive; otherwise the bytes are copied and the source pages
// released, so loading never holds two copies of the model.
absl::StatusOr<at::Tensor> LoadTensor(const std::shared_ptr<const Checkpoint>& checkpoint, const std::string& name,
                                      const std::vector<int64_t>& expected_shape, const c10::Device& device,
                                      at::ScalarType dtype);

// A TensorSpec + filler pair for writing CPU-contiguous tensors with WriteSafetensors.
struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};
absl::StatusOr<std::vector<TensorSpec>> SpecsOf(const std::vector<NamedTensor>& tensors);
TensorFiller FillerOf(const std::vector<NamedTensor>& tensors);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_TENSOR_IO_H_
