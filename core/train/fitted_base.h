// The base of an adapter trained with a fitted init (LoraConfig::init loftq or pissa): the
// adapter belongs to that base, not to the checkpoint it was derived from, so the run
// writes it beside the adapter (as PEFT's LoftQ recipe saves the backbone) and the adapter
// records its path and fingerprint; serving over any other base is refused by the
// fingerprint check.
#ifndef QLORAD_CORE_TRAIN_FITTED_BASE_H_
#define QLORAD_CORE_TRAIN_FITTED_BASE_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/adapter/peft_weights.h"
#include "core/quant/lora_init.h"
#include "nlohmann/json.hpp"

namespace qlorad {

inline constexpr char kFittedBaseDir[] = "base_model";

// True for the inits that derive the base from W (loftq, pissa).
bool HasFittedBase(const LoraConfig& config);

struct FittedBase {
  std::string path;         // <adapter_dir>/base_model
  std::string fingerprint;  // its ModelFingerprint
  nlohmann::ordered_json record;  // training_run.json's base_model.initialized
};

// Writes the base of `modules` (their LoraLinear bases; the other tensors from model_dir)
// into adapter_dir/base_model, replacing one a previous attempt of the same run left.
absl::StatusOr<FittedBase> WriteFittedBase(const std::string& model_dir, const std::string& adapter_dir,
                                           const LoraConfig& config, const LoraModules& modules,
                                           const InitErrorTally& tally);

// training_run.json's record of what the init bought: ‖W − (base + s·BA)‖ / ‖W‖ at step 0
// against plain quantization's ‖W − Q‖ / ‖W‖ (4-bit) over the targeted modules.
nlohmann::ordered_json InitErrorRecord(const InitErrorTally& tally);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_FITTED_BASE_H_
