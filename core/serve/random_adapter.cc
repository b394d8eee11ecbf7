#include "core/serve/random_adapter.h"

#include <map>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/adapter/peft_weights.h"
#include "core/model/loader.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad::serve {

absl::Status WriteRandomAdapter(const std::string& dir, const ModelConfig& config, const RandomAdapterOptions& options) {
  QLORAD_RETURN_IF_ERROR(options.lora.Validate());
  return CatchTorchErrors("writing a random adapter", [&]() -> absl::Status {
    at::Generator generator = at::detail::createCPUGenerator(options.seed);
    std::map<std::string, std::pair<at::Tensor, at::Tensor>> weights;
    std::map<std::string, at::Tensor> magnitudes;
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer)
      for (const std::string& module : LayerLinearModules(layer)) {
        if (!options.lora.Targets(module)) continue;
        const auto [out, in] = LinearModuleShape(config, module);
        const int64_t r = options.lora.RankFor(module);
        weights[module] = {at::normal(0.0, options.a_std, {r, in}, generator),
                           at::normal(0.0, options.b_std, {out, r}, generator)};
        if (options.lora.use_dora) magnitudes[module] = at::rand({out}, generator) + 0.5;
      }
    std::map<std::string, std::string> metadata;
    if (!options.base_fingerprint.empty()) metadata["qlorad_base_fingerprint"] = options.base_fingerprint;
    return SavePeftWeights(dir, options.lora, weights, options.base_model, metadata, magnitudes);
  });
}

}  // namespace qlorad::serve
