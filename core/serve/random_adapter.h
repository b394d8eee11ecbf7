// Seeded random LoRA adapters in PEFT format for a model config, without loading
// the base: for tests (many distinct adapters over the fixture model) and serving
// benchmarks (adapter load time for a 1B-shaped base). Unlike a freshly initialised
// adapter, B is non-zero, so each adapter changes the model's outputs.
#ifndef QLORAD_CORE_SERVE_RANDOM_ADAPTER_H_
#define QLORAD_CORE_SERVE_RANDOM_ADAPTER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "core/model/config.h"
#include "core/adapter/lora_config.h"

namespace qlorad::serve {

struct RandomAdapterOptions {
  LoraConfig lora;            // r, alpha, targets (patterns honoured); use_dora: magnitudes ~ U(0.5, 1.5)
  uint64_t seed = 0;
  double a_std = 0.02;        // A ~ N(0, a_std²)
  double b_std = 0.02;        // B ~ N(0, b_std²)
  std::string base_fingerprint;  // recorded as qlorad_base_fingerprint ("" = none)
  std::string base_model = "random-base";
};

absl::Status WriteRandomAdapter(const std::string& dir, const ModelConfig& config, const RandomAdapterOptions& options);

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_RANDOM_ADAPTER_H_
