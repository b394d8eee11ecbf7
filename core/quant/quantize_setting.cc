#include "core/quant/quantize_setting.h"

#include "absl/strings/str_cat.h"

namespace qlorad {

absl::StatusOr<kernels::QuantType> ParseQuantType(const std::string& name, const std::string& field) {
  if (name == "nf4") return kernels::QuantType::kNF4;
  if (name == "fp4") return kernels::QuantType::kFP4;
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": '", name, "' is not nf4 or fp4 (hint: nf4 is QLoRA's 4-bit type)"));
}

absl::StatusOr<std::optional<kernels::QuantType>> ParseQuantizeSetting(const std::string& setting,
                                                                       const std::string& field) {
  if (setting == "none") return std::optional<kernels::QuantType>();
  auto type = ParseQuantType(setting, field);
  if (!type.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", setting, "' is not none, nf4 or fp4 (hint: nf4 is QLoRA's 4-bit type)"));
  }
  return std::optional<kernels::QuantType>(*type);
}

}  // namespace qlorad
