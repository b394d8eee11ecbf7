#include "server/tool/quantize_flags.h"

#include "absl/strings/str_cat.h"
#include "core/quant/nf4_model.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad::tool {

absl::StatusOr<QuantOptions> QuantOptionsFromFlags(const Flags& flags, const std::string& type) {
  QuantOptions options;
  if (type == "nf4") {
    options.quant_type = kernels::QuantType::kNF4;
  } else if (type == "fp4") {
    options.quant_type = kernels::QuantType::kFP4;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("quantization type '", type, "' is not nf4 or fp4"));
  }
  QLORAD_ASSIGN_OR_RETURN(options.blocksize, flags.GetInt("blocksize", kernels::kDefaultBlocksize));
  QLORAD_RETURN_IF_ERROR(kernels::CheckBlocksize(options.blocksize));
  options.double_quant = !flags.GetBool("no-double-quant");
  return options;
}

absl::StatusOr<bool> ApplyQuantizeFlag(const Flags& flags, LoadOptions& options) {
  std::string type = flags.GetOr("quantize", "none");
  if (type == "none") {
    // A pre-quantized (bitsandbytes 4-bit) checkpoint still loads as 4-bit.
    auto text = ReadFileToString(flags.GetOr("model", "") + "/config.json");
    if (!text.ok()) return false;
    nlohmann::json config = nlohmann::json::parse(*text, nullptr, false);
    if (config.is_discarded() || !config.contains("quantization_config")) return false;
    const nlohmann::json& quant = config["quantization_config"];
    if (quant.value("quant_method", "") != "bitsandbytes" || !quant.value("load_in_4bit", false)) return false;
    type = quant.value("bnb_4bit_quant_type", "nf4");
  }
  QLORAD_ASSIGN_OR_RETURN(QuantOptions quant, QuantOptionsFromFlags(flags, type));
  options.linear_factory = MakeQuantizedLinearFactory(quant);
  return true;
}

}  // namespace qlorad::tool
