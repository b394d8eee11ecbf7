// The `quantize` setting of model loading, shared by the tool (--quantize), the daemon
// (--quantize) and training jobs (JobSpec.quantize). No torch: front ends may include it.
#ifndef QLORAD_CORE_QUANT_QUANTIZE_SETTING_H_
#define QLORAD_CORE_QUANT_QUANTIZE_SETTING_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/quant4bit.h"

namespace qlorad {

// "none" -> nullopt (full-precision layers), "nf4" / "fp4" -> that 4-bit type. Anything
// else is INVALID_ARGUMENT naming `field` and the accepted values.
absl::StatusOr<std::optional<kernels::QuantType>> ParseQuantizeSetting(const std::string& setting,
                                                                       const std::string& field = "quantize");

}  // namespace qlorad

#endif  // QLORAD_CORE_QUANT_QUANTIZE_SETTING_H_
