// qlorad-tool merge: a PEFT adapter merged into its base, written as an HF model directory.
#include <cstdio>

#include "core/export/merge.h"
#include "core/quant/quantize_setting.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"
#include "server/tool/model_flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool merge --model DIR --adapter PEFT_DIR --out DIR [--dtype f32|f16|bf16]\n"
    "       [--merge-onto dequant|original] [--quantize nf4|fp4 [--blocksize 64] [--no-double-quant]]\n"
    "       [--allow-base-mismatch]\n"
    "  Writes W' = W0 + scaling * B @ A for every adapted module (and config, tokenizer, merge_record.json).\n"
    "  --merge-onto dequant   W0 = dequant(4-bit W), the weights a QLoRA adapter was trained against (the\n"
    "                         default for a QLoRA adapter and for a pre-quantized base); every decoder linear\n"
    "                         layer is written dequantized, so the merged model computes what the served\n"
    "                         QLoRA model does\n"
    "  --merge-onto original  W0 = the checkpoint's weights (the default for a plain LoRA adapter)\n"
    "  --quantize             the 4-bit setting the adapter was trained against, when it does not record one\n"
    "  --dtype                output dtype (default f32)\n";

absl::Status Merge(const Args& args) {
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"model", "adapter", "out", "dtype", "merge-onto", "quantize",
                                                           "blocksize"},
                                                    {"no-double-quant", "allow-base-mismatch", "help"}));
  if (flags.GetBool("help")) {
    std::fputs(kUsage, stdout);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(std::string model_dir, flags.GetRequired("model"));
  QLORAD_ASSIGN_OR_RETURN(std::string adapter_dir, flags.GetRequired("adapter"));
  QLORAD_ASSIGN_OR_RETURN(std::string out_dir, flags.GetRequired("out"));
  QLORAD_ASSIGN_OR_RETURN(DType dtype, ParseMergeDType(flags.GetOr("dtype", "f32"), "--dtype"));
  MergeOptions options;
  QLORAD_ASSIGN_OR_RETURN(options.onto, ParseMergeOnto(flags.GetOr("merge-onto", "auto"), "--merge-onto"));
  options.allow_base_mismatch = flags.GetBool("allow-base-mismatch");
  if (flags.Has("quantize")) {
    QLORAD_ASSIGN_OR_RETURN(std::optional<kernels::QuantType> type,
                            ParseQuantizeSetting(flags.GetOr("quantize", ""), "--quantize"));
    if (type.has_value()) {
      QLORAD_ASSIGN_OR_RETURN(QuantOptions quant, QuantOptionsFromFlags(flags));
      quant.quant_type = *type;
      options.quantize = quant;
    }
  } else if (flags.Has("blocksize") || flags.GetBool("no-double-quant")) {
    return absl::InvalidArgumentError("--blocksize/--no-double-quant need --quantize nf4|fp4");
  }
  QLORAD_ASSIGN_OR_RETURN(MergedWeights merged, MergeAdapterIntoWeights(model_dir, adapter_dir, options));
  QLORAD_RETURN_IF_ERROR(WriteMergedModel(model_dir, merged, out_dir, dtype));
  std::printf("merged adapter %s into %s onto %s%s%s: %lld adapted modules, %zu weights replaced; wrote %s (%s)\n",
              merged.adapter_id.c_str(), model_dir.c_str(), MergeOntoName(merged.onto),
              merged.quantization.empty() ? "" : " ", merged.quantization.c_str(),
              static_cast<long long>(merged.adapted_modules), merged.weights.size(), out_dir.c_str(), DTypeName(dtype));
  return absl::OkStatus();
}

}  // namespace

int RunMerge(const Args& args) { return ReportStatus("merge", Merge(args)); }

}  // namespace qlorad::tool
