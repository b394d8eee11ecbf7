// Shared flag handling for commands that load or write 4-bit models.
#ifndef QLORAD_SERVER_TOOL_QUANTIZE_FLAGS_H_
#define QLORAD_SERVER_TOOL_QUANTIZE_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/model/loader.h"
#include "core/quant/quant_state.h"
#include "server/tool/flags.h"

namespace qlorad::tool {

// `type` is "nf4" or "fp4"; reads --blocksize and --no-double-quant when present.
absl::StatusOr<QuantOptions> QuantOptionsFromFlags(const Flags& flags, const std::string& type);

// Applies --quantize none|nf4|fp4 to `options` (a pre-quantized checkpoint is
// always loaded as such). Returns true if the model's linear layers will be 4-bit.
absl::StatusOr<bool> ApplyQuantizeFlag(const Flags& flags, LoadOptions& options);

}  // namespace qlorad::tool

#endif  // QLORAD_SERVER_TOOL_QUANTIZE_FLAGS_H_
