// The tensors of a PEFT LoRA adapter directory (adapter_model.safetensors beside
// adapter_config.json, see peft_config.h): writing trained adapters and loading
// an adapter's lora_A/lora_B into the LoRA layers of a loaded base.
#ifndef QLORAD_CORE_ADAPTER_PEFT_WEIGHTS_H_
#define QLORAD_CORE_ADAPTER_PEFT_WEIGHTS_H_

#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "core/adapter/lora_config.h"
#include "core/quant/lora_linear.h"

namespace qlorad {

// Module name -> its LoraLinear, filled by the LoRA linear factory while the model loads.
using LoraModules = std::map<std::string, LoraLinear>;

// Writes a PEFT LoRA adapter directory. `metadata` goes into the safetensors
// header (e.g. the base model fingerprint); `base_model` is recorded as
// base_model_name_or_path.
absl::Status SavePeftAdapter(const std::string& dir, const LoraConfig& config, const LoraModules& modules,
                             const std::string& base_model, const std::map<std::string, std::string>& metadata);

// The same from plain module name -> {A [r, in], B [out, r]} tensors (any device), and
// DoRA magnitudes [out] by module (written as <module>.lora_magnitude_vector, PEFT's key).
absl::Status SavePeftWeights(const std::string& dir, const LoraConfig& config,
                             const std::map<std::string, std::pair<at::Tensor, at::Tensor>>& weights,
                             const std::string& base_model, const std::map<std::string, std::string>& metadata,
                             const std::map<std::string, at::Tensor>& magnitudes = {});

// Copies the adapter's lora_A/lora_B (and DoRA magnitude) tensors into `modules`. Every tensor must
// map to a module of the base with the right shape (errors name the tensor and
// give a hint); an adapter that applies to zero modules is an error.
absl::Status LoadPeftWeights(const std::string& dir, LoraModules& modules);

}  // namespace qlorad

#endif  // QLORAD_CORE_ADAPTER_PEFT_WEIGHTS_H_
