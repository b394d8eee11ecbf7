// Flags shared by commands that load a model: --model, --device, --dtype,
// --quantize/--blocksize/--no-double-quant, --adapter/--allow-base-mismatch.
#ifndef QLORAD_SERVER_TOOL_MODEL_FLAGS_H_
#define QLORAD_SERVER_TOOL_MODEL_FLAGS_H_

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/loader.h"
#include "core/quant/quant_state.h"
#include "core/train/lora_model.h"
#include "server/tool/flags.h"

namespace qlorad::tool {

inline const std::set<std::string> kModelValueFlags = {"model", "device", "dtype", "quantize", "blocksize", "adapter"};
inline const std::set<std::string> kModelBoolFlags = {"no-double-quant", "allow-base-mismatch"};
inline constexpr char kModelUsage[] =
    "  model flags: --model DIR [--device cpu|cuda:N|auto] [--dtype f32|bf16|f16] [--quantize none|nf4|fp4]\n"
    "               [--blocksize 64] [--no-double-quant] [--adapter PEFT_DIR [--allow-base-mismatch]]\n";

// Block layout from --blocksize and --no-double-quant (the type is set by the caller).
absl::StatusOr<QuantOptions> QuantOptionsFromFlags(const Flags& flags);

struct ToolModel {
  LoadedModel loaded;
  bool quantized = false;                     // linear layers are 4-bit
  std::shared_ptr<LoraModules> lora_modules;  // set with --adapter
};

// Loads --model (a pre-quantized bitsandbytes checkpoint loads as 4-bit even
// without --quantize) and applies --adapter. An adapter trained on another base
// (fingerprint in its metadata) is refused unless --allow-base-mismatch.
absl::StatusOr<ToolModel> LoadModelFromFlags(const Flags& flags, const std::string& default_device);

// Loads --model (quantized per the flags) with fresh, trainable adapters per `lora`.
absl::StatusOr<ToolModel> LoadModelForTraining(const Flags& flags, const LoraConfig& lora);

// Adds LoRA adapters per `config` on top of whatever `options` builds.
void AddLoraToLoadOptions(const LoraConfig& config, LoadOptions& options, std::shared_ptr<LoraModules>& modules);

}  // namespace qlorad::tool

#endif  // QLORAD_SERVER_TOOL_MODEL_FLAGS_H_
