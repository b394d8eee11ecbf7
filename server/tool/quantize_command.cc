// qlorad-tool quantize: writes a bitsandbytes-layout 4-bit copy of a model.
#include <cstdio>

#include "core/quant/nf4_model.h"
#include "core/quant/quantize_setting.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"
#include "server/tool/model_flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool quantize --model DIR --out DIR [--quant-type nf4|fp4] [--blocksize 64] [--no-double-quant]\n";

absl::Status Quantize(const Args& args) {
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"model", "out", "quant-type", "blocksize"},
                                                    {"no-double-quant", "help"}));
  if (flags.GetBool("help")) {
    std::fputs(kUsage, stdout);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(std::string model_dir, flags.GetRequired("model"));
  QLORAD_ASSIGN_OR_RETURN(std::string out_dir, flags.GetRequired("out"));
  QLORAD_ASSIGN_OR_RETURN(QuantOptions options, QuantOptionsFromFlags(flags));
  QLORAD_ASSIGN_OR_RETURN(options.quant_type, ParseQuantType(flags.GetOr("quant-type", "nf4"), "--quant-type"));
  QLORAD_RETURN_IF_ERROR(QuantizeCheckpoint(model_dir, out_dir, options));
  std::printf("wrote %s-quantized model to %s\n", kernels::QuantTypeName(options.quant_type), out_dir.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunQuantize(const Args& args) { return ReportStatus("quantize", Quantize(args)); }

}  // namespace qlorad::tool
