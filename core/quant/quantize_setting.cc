#include "core/quant/quantize_setting.h"

#include "absl/strings/str_cat.h"

namespace qlorad {

absl::StatusOr<std::optional<kernels::QuantType>> ParseQuantizeSetting(const std::string& setting,
                                                                       const std::string& field) {
  if (setting == "none") return std::optional<kernels::QuantType>();
  if (setting == "nf4") return std::optional<kernels::QuantType>(kernels::QuantType::kNF4);
  if (setting == "fp4") return std::optional<kernels::QuantType>(kernels::QuantType::kFP4);
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": '", setting, "' is not none, nf4 or fp4 (hint: nf4 is QLoRA's 4-bit type)"));
}

}  // namespace qlorad
