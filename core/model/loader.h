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
#include <utility>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/config.h"
#include "core/model/llama.h"
#include "core/model/linear.h"

namespace qlorad {

// What a factory needs to build one linear layer of the decoder.
struct LinearSpec {
  std::shared_ptr<const Checkpoint> checkpoint;
  std::string module;  // e.g. "model.layers.3.self_attn.q_proj"; tensors are module + ".weight"/".bias"
  int64_t out_features = 0;
  int64_t in_features = 0;
  bool has_bias = false;
  c10::Device device = c10::Device(c10::kCPU);  // target device
  at::ScalarType dtype = at::kFloat;            // compute dtype
};

// Builds the layer for one module from the checkpoint. Factories decide how the
// weight is read (dense, quantized on the fly, or pre-quantized tensors).
using LinearFactory = std::function<absl::StatusOr<std::shared_ptr<LinearLayer>>(const LinearSpec& spec)>;

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

// The default factory: a frozen DenseLinear in the compute dtype.
absl::StatusOr<std::shared_ptr<LinearLayer>> MakeDenseLinear(const LinearSpec& spec);

// The module names of every linear layer of decoder layer `index`
// ("model.layers.<index>.self_attn.q_proj", ...), in checkpoint order.
std::vector<std::string> LayerLinearModules(int64_t index);

// {out_features, in_features} of a decoder linear module ("model.layers.3.mlp.up_proj"
// or just "up_proj") under `config`.
std::pair<int64_t, int64_t> LinearModuleShape(const ModelConfig& config, const std::string& module);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_LOADER_H_
