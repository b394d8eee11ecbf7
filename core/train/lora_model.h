// LoRA on the decoder: which modules get adapters, the layer that carries one,
// and the PEFT adapter format (adapter_config.json + adapter_model.safetensors)
// for saving trained adapters and applying existing ones.
//
// The base stays frozen and unmodified: y = base(x) + scaling · B(A(dropout(x))).
#ifndef QLORAD_CORE_TRAIN_LORA_MODEL_H_
#define QLORAD_CORE_TRAIN_LORA_MODEL_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/linear.h"
#include "core/model/loader.h"
#include "core/quant/lora_linear.h"

namespace qlorad {

struct LoraConfig {
  int64_t r = 16;
  double alpha = 32;
  double dropout = 0.05;
  bool use_rslora = false;
  // Short module names; default: every linear projection (the QLoRA paper's setting).
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  // Per-module overrides keyed by short name or full module name (PEFT's rank_pattern/alpha_pattern).
  std::map<std::string, int64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;

  absl::Status Validate() const;
  // The rank and alpha that apply to `module` ("model.layers.3.mlp.up_proj").
  int64_t RankFor(const std::string& module) const;
  double AlphaFor(const std::string& module) const;
  bool Targets(const std::string& module) const;
};

// The decoder's LinearLayer over a LoraLinear.
class LoraLinearLayer : public LinearLayer {
 public:
  explicit LoraLinearLayer(LoraLinear layer);
  at::Tensor forward(const at::Tensor& x) override { return layer_->forward(x); }
  int64_t in_features() const override { return layer_->in_features(); }
  int64_t out_features() const override { return layer_->out_features(); }
  LoraLinear& layer() { return layer_; }

 private:
  LoraLinear layer_;
};

// Module name -> its LoraLinear, filled by the factory while the model loads.
using LoraModules = std::map<std::string, LoraLinear>;

// Wraps `base_factory` (dense or 4-bit): targeted modules become LoraLinearLayer
// (recorded in *modules), others stay as the base factory built them.
LinearFactory MakeLoraLinearFactory(const LoraConfig& config, LinearFactory base_factory,
                                    std::shared_ptr<LoraModules> modules);

// Every trainable adapter tensor (lora_A and lora_B of each module), in module order.
std::vector<at::Tensor> LoraParameters(const LoraModules& modules);

// Writes a PEFT LoRA adapter directory. `metadata` goes into the safetensors
// header (e.g. the base model fingerprint); `base_model` is recorded as
// base_model_name_or_path.
absl::Status SavePeftAdapter(const std::string& dir, const LoraConfig& config, const LoraModules& modules,
                             const std::string& base_model, const std::map<std::string, std::string>& metadata);

// The same from plain module name -> {A [r, in], B [out, r]} tensors (any device).
absl::Status SavePeftWeights(const std::string& dir, const LoraConfig& config,
                             const std::map<std::string, std::pair<at::Tensor, at::Tensor>>& weights,
                             const std::string& base_model, const std::map<std::string, std::string>& metadata);

// Reads adapter_config.json. Refuses what qlorad does not support (DoRA,
// modules_to_save, bias != "none", fan_in_fan_out, non-LORA types) with the field named.
absl::StatusOr<LoraConfig> ReadPeftConfig(const std::string& dir);

// Copies the adapter's lora_A/lora_B tensors into `modules`. Every tensor must
// map to a module of the base with the right shape (errors name the tensor and
// give a hint); an adapter that applies to zero modules is an error.
absl::Status LoadPeftWeights(const std::string& dir, LoraModules& modules);

// The safetensors metadata of an adapter (e.g. qlorad_base_fingerprint).
absl::StatusOr<std::map<std::string, std::string>> ReadPeftMetadata(const std::string& dir);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_LORA_MODEL_H_
