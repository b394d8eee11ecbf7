// A LoRA adapter prepared for serving over a shared, resident base: per targeted
// module the A [r, in] and B [out, r] tensors on the compute device, in the compute
// dtype or the one AdapterLoadOptions::factor_dtype asks for, plus the scaling. Read from a PEFT adapter directory (qlorad's trainer
// writes the same format) and validated strictly against the resident base.
#ifndef QLORAD_CORE_SERVE_SERVING_ADAPTER_H_
#define QLORAD_CORE_SERVE_SERVING_ADAPTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "core/adapter/lora_config.h"

namespace qlorad::serve {

struct ModuleDelta {
  at::Tensor a;  // [r, in], contiguous
  at::Tensor b;  // [out, r]; loaded onto the CPU: a transposed view of a contiguous [r, out]; else contiguous
  double scaling = 1.0;
  // DoRA only (undefined for LoRA): the magnitude m [out] as stored, and the row gain
  // m / ‖W + s·BA‖_row [out] over the resident base, in the compute dtype. The served
  // output of such a row is gain ⊙ (base(x) − b + s·B·A·x) + b.
  at::Tensor magnitude;
  at::Tensor row_gain;
};

struct ServingAdapter {
  std::string id;    // "name@version"
  std::string path;  // the PEFT directory it was read from
  std::string base_fingerprint;  // from the adapter's metadata ("" if it records none)
  bool base_mismatch_overridden = false;
  LoraConfig config;
  std::map<std::string, ModuleDelta> modules;  // full module name -> delta
  int64_t bytes = 0;                           // device bytes of the tensors
};

// Module name -> {out_features, in_features} of the resident base's linear layers.
using BaseModuleShapes = std::map<std::string, std::pair<int64_t, int64_t>>;

struct AdapterLoadOptions {
  std::string base_fingerprint;      // of the resident base
  bool allow_base_mismatch = false;  // recorded on the adapter when used
  int64_t max_rank = 64;
  c10::Device device = c10::Device(c10::kCPU);
  at::ScalarType dtype = at::kFloat;
  // The dtype A and B are kept in (unset: `dtype`). kBFloat16 under fp32 CPU compute halves
  // the bytes a decode step streams per adapter (the CPU SGMV kernel widens them exactly);
  // the DoRA row gain is taken over the factors as kept. Magnitudes stay in `dtype`.
  std::optional<at::ScalarType> factor_dtype;
  // The resident base's weight of a module, fp32 [out, in] (dequantized for 4-bit): what
  // a DoRA adapter's row norms are taken over. Unset: DoRA adapters are refused.
  std::function<absl::StatusOr<at::Tensor>(const std::string& module)> base_weight;
};

// Reads `dir` with PEFT's semantics (ReadPeftConfig: per-module rank/alpha from
// rank_pattern/alpha_pattern, rsLoRA, target selection; F16/BF16/F32 tensors
// converted to options.dtype, A and B to factor_dtype when set; F64 too). Refused, with the tensor or field named and a hint:
// unsupported adapter_config features (modules_to_save, bias != none, ...; DoRA
// without options.base_weight),
// adapter_model.bin without safetensors, rank above max_rank, a base-fingerprint
// mismatch without the override, a key that is not a PEFT LoRA key, a module the
// base does not have or the config does not target, a shape that does not fit the
// module's rank, a module with only one of A/B, and an adapter that applies to zero modules.
absl::StatusOr<std::shared_ptr<const ServingAdapter>> LoadServingAdapter(const std::string& dir, const std::string& id,
                                                                         const BaseModuleShapes& base,
                                                                         const AdapterLoadOptions& options);

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_SERVING_ADAPTER_H_
