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

// One config for both uses: training (Validate(): short projection names only)
// and adapters read from adapter_config.json, which may carry PEFT's other
// selection forms (a regex target_modules, layers_to_transform, exclude_modules).
// RankFor/AlphaFor/Targets follow PEFT's rules for both (peft_match.h).
struct LoraConfig {
  int64_t r = 16;
  double alpha = 32;
  double dropout = 0.05;
  bool use_rslora = false;  // scaling alpha / sqrt(r) instead of alpha / r
  // Module names: a module is targeted if its name equals an entry or ends with "." + entry.
  // Default: every linear projection (the QLoRA paper's setting).
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  // PEFT's string form of target_modules: a Python regex fully matching the module name.
  // When non-empty it replaces target_modules. Loaded adapters only (Validate() refuses it).
  std::string target_modules_regex;
  // PEFT's layers_to_transform / layers_pattern: when non-empty, a module targeted through
  // a suffix of target_modules is kept only if its layer index (PeftLayerIndex) is listed.
  std::vector<int64_t> layers_to_transform;
  std::vector<std::string> layers_pattern;
  // PEFT's exclude_modules: list form (equal or "." + entry suffix) or a regex (fullmatch).
  std::vector<std::string> exclude_modules;
  std::string exclude_modules_regex;
  // Per-module overrides (PEFT's rank_pattern/alpha_pattern). Keys are regexes matched as
  // re.match(rf"(.*\.)?({key})$", module): a short name, a dotted suffix, a full name or a regex.
  std::map<std::string, int64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;
  // The order the keys are tried in (first match wins, as PEFT iterates the JSON dict):
  // these first, then any key not listed, in map order. ReadPeftConfig fills them from the file.
  std::vector<std::string> rank_pattern_order;
  std::vector<std::string> alpha_pattern_order;

  absl::Status Validate() const;
  // The rank and alpha that apply to `module` ("model.layers.3.mlp.up_proj").
  int64_t RankFor(const std::string& module) const;
  double AlphaFor(const std::string& module) const;
  // alpha / r, or alpha / sqrt(r) with use_rslora, for `module`.
  double ScalingFor(const std::string& module) const;
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

// Reads adapter_config.json with PEFT's semantics (see LoraConfig; target_modules
// "all-linear" = every projection). Refuses, with the field named: what qlorad does
// not support (DoRA, modules_to_save, lora_bias, bias != "none", fan_in_fan_out,
// non-LORA types, ...), patterns that do not compile and inconsistent fields.
absl::StatusOr<LoraConfig> ReadPeftConfig(const std::string& dir);

// dir + "/adapter_model.safetensors"; NOT_FOUND when absent, with a hint to convert
// when only PEFT's pickle adapter_model.bin is there (qlorad never unpickles).
absl::StatusOr<std::string> PeftWeightsPath(const std::string& dir);

// A PEFT tensor key: base_model.model.<module>.lora_A.weight / .lora_B.weight, also
// with an adapter name before ".weight" (".lora_A.default.weight"). Errors name the
// tensor with a hint (embedding adapters, lora biases and other keys are refused).
struct PeftTensorKey {
  std::string module;
  bool is_a = false;
};
absl::StatusOr<PeftTensorKey> ParsePeftTensorKey(const std::string& name);

// Copies the adapter's lora_A/lora_B tensors into `modules`. Every tensor must
// map to a module of the base with the right shape (errors name the tensor and
// give a hint); an adapter that applies to zero modules is an error.
absl::Status LoadPeftWeights(const std::string& dir, LoraModules& modules);

// The safetensors metadata of an adapter (e.g. qlorad_base_fingerprint).
absl::StatusOr<std::map<std::string, std::string>> ReadPeftMetadata(const std::string& dir);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_LORA_MODEL_H_
