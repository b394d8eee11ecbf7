// The `quantize` setting of model loading, shared by the tool (--quantize), the daemon
// (--quantize) and training jobs (JobSpec.quantize). This header has no torch.
#ifndef QLORAD_CORE_QUANT_QUANTIZE_SETTING_H_
#define QLORAD_CORE_QUANT_QUANTIZE_SETTING_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/quant4bit.h"

namespace qlorad {

// "nf4" / "fp4" -> that 4-bit type; anything else is INVALID_ARGUMENT naming `field`.
absl::StatusOr<kernels::QuantType> ParseQuantType(const std::string& name, const std::string& field);

// "none" -> nullopt (full-precision layers), otherwise ParseQuantType. An unknown value is
// INVALID_ARGUMENT naming `field` and the accepted values.
absl::StatusOr<std::optional<kernels::QuantType>> ParseQuantizeSetting(const std::string& setting,
                                                                       const std::string& field = "quantize");

}  // namespace qlorad

#endif  // QLORAD_CORE_QUANT_QUANTIZE_SETTING_H_
