// Loads a Hugging Face model directory (config.json + safetensors) into a
// LlamaModel on a device, streaming tensor by tensor so that peak memory stays
// near the final model size. The linear layers are built through a factory so
// callers can substitute quantized or adapted layers.
#ifndef QLORAD_CORE_MODEL_LOADER_H_
#define QLORAD_CORE_MODEL_LOADER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/config.h"
#include "core/model/llama.h"
#include "core/model/linear.h"

namespace qlorad {

// Builds the layer for `module` (e.g. "model.layers.3.self_attn.q_proj") from its
// checkpoint weight [out, in] (and bias, if the module has one), already on the
// target device in the compute dtype.
using LinearFactory = std::function<absl::StatusOr<std::shared_ptr<LinearLayer>>(
    const std::string& module, at::Tensor weight, std::optional<at::Tensor> bias)>;

struct LoadOptions {
  c10::Device device = c10::Device(c10::kCPU);
  std::optional<at::ScalarType> dtype;  // default: fp32 on CPU, bf16 on CUDA
  LinearFactory linear_factory;         // default: DenseLinear
  bool compute_fingerprint = true;
};

struct LoadedModel {
  ModelConfig config;
  LlamaModel model{nullptr};
  std::string model_dir;
  std::string fingerprint;  // "" if not computed
  std::shared_ptr<const Checkpoint> checkpoint;  // keeps zero-copy weights valid
};

// Errors name the file and tensor: a missing tensor, a wrong shape, a bad
// config field, a corrupt safetensors file. libtorch errors become INTERNAL.
absl::StatusOr<LoadedModel> LoadModel(const std::string& model_dir, const LoadOptions& options = {});

// The default factory: a frozen DenseLinear.
absl::StatusOr<std::shared_ptr<LinearLayer>> MakeDenseLinear(const std::string& module, at::Tensor weight,
                                                             std::optional<at::Tensor> bias);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_LOADER_H_
