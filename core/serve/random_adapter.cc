#include "core/serve/random_adapter.h"

#include <map>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/match.h"
#include "core/model/loader.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad::serve {

std::pair<int64_t, int64_t> LinearShape(const ModelConfig& config, const std::string& module) {
  const int64_t hidden = config.hidden_size, inter = config.intermediate_size;
  const int64_t q = config.num_attention_heads * config.head_dim, kv = config.num_key_value_heads * config.head_dim;
  if (absl::EndsWith(module, "q_proj")) return {q, hidden};
  if (absl::EndsWith(module, "k_proj") || absl::EndsWith(module, "v_proj")) return {kv, hidden};
  if (absl::EndsWith(module, "o_proj")) return {hidden, q};
  if (absl::EndsWith(module, "down_proj")) return {hidden, inter};
  return {inter, hidden};  // gate_proj, up_proj
}

absl::Status WriteRandomAdapter(const std::string& dir, const ModelConfig& config, const RandomAdapterOptions& options) {
  QLORAD_RETURN_IF_ERROR(options.lora.Validate());
  return CatchTorchErrors("writing a random adapter", [&]() -> absl::Status {
    at::Generator generator = at::detail::createCPUGenerator(options.seed);
    std::map<std::string, std::pair<at::Tensor, at::Tensor>> weights;
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer)
      for (const std::string& module : LayerLinearModules(layer)) {
        if (!options.lora.Targets(module)) continue;
        const auto [out, in] = LinearShape(config, module);
        const int64_t r = options.lora.RankFor(module);
        weights[module] = {at::normal(0.0, options.a_std, {r, in}, generator),
                           at::normal(0.0, options.b_std, {out, r}, generator)};
      }
    std::map<std::string, std::string> metadata;
    if (!options.base_fingerprint.empty()) metadata["qlorad_base_fingerprint"] = options.base_fingerprint;
    return SavePeftWeights(dir, options.lora, weights, options.base_model, metadata);
  });
}

}  // namespace qlorad::serve
