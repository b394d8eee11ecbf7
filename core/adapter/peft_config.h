// The PEFT LoRA adapter directory format, as PEFT and qlorad write it:
// adapter_config.json (read with PEFT's semantics, written with PEFT's LoraConfig
// fields), the tensor keys of adapter_model.safetensors and its metadata.
// Torch-free; the tensors themselves are peft_weights.h.
#ifndef QLORAD_CORE_ADAPTER_PEFT_CONFIG_H_
#define QLORAD_CORE_ADAPTER_PEFT_CONFIG_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/adapter/lora_config.h"

namespace qlorad {

// Reads adapter_config.json with PEFT's semantics (see LoraConfig; target_modules
// "all-linear" = every projection). Refuses, with the field named: what qlorad does
// not support (modules_to_save, lora_bias, bias != "none", fan_in_fan_out,
// non-LORA types, ...), patterns that do not compile and inconsistent fields. use_dora is
// read (LoraConfig::use_dora).
absl::StatusOr<LoraConfig> ReadPeftConfig(const std::string& dir);

// Writes dir/adapter_config.json for `config` (pattern keys in lookup order, so PEFT,
// first match wins, reads the ranks qlorad used); `base_model` is recorded as
// base_model_name_or_path. The directory must exist.
absl::Status WritePeftConfig(const std::string& dir, const LoraConfig& config, const std::string& base_model);

// dir + "/adapter_model.safetensors"; NOT_FOUND when absent, with a hint to convert
// when only PEFT's pickle adapter_model.bin is there (qlorad never unpickles).
absl::StatusOr<std::string> PeftWeightsPath(const std::string& dir);

// A PEFT tensor key: base_model.model.<module>.lora_A.weight / .lora_B.weight, also
// with an adapter name before ".weight" (".lora_A.default.weight"). Errors name the
// tensor with a hint (embedding adapters, lora biases and other keys are refused).
struct PeftTensorKey {
  std::string module;
  bool is_a = false;
  bool is_magnitude = false;  // DoRA's lora_magnitude_vector (only with allow_magnitude)
};
// PEFT writes DoRA's magnitude as <module>.lora_magnitude_vector (older versions added
// ".weight"); both are read when allow_magnitude, refused otherwise.
absl::StatusOr<PeftTensorKey> ParsePeftTensorKey(const std::string& name, bool allow_magnitude = false);

// The key PEFT writes for `module`'s lora_A (is_a) or lora_B weight.
std::string PeftTensorName(const std::string& module, bool is_a);
// The key PEFT writes for `module`'s DoRA magnitude.
std::string PeftMagnitudeName(const std::string& module);

// The safetensors metadata of an adapter (e.g. qlorad_base_fingerprint).
absl::StatusOr<std::map<std::string, std::string>> ReadPeftMetadata(const std::string& dir);

}  // namespace qlorad

#endif  // QLORAD_CORE_ADAPTER_PEFT_CONFIG_H_
