// qlorad-tool make-model: a seeded random HF-format model directory.
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/model/random_model.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool make-model --arch llama|mistral|qwen2 --layers N --hidden H --heads A --kv-heads K\n"
    "         --intermediate I --vocab V [--tie-embeddings] [--dtype bf16|f32] [--tokenizer PATH]\n"
    "         [--max-shard-size 64KB|500MB|5GB] [--max-positions P] --seed S --out DIR\n";

// "64KB", "500MB", "5GB" (powers of 1000, as Hugging Face's max_shard_size) or plain bytes.
absl::StatusOr<uint64_t> ParseByteSize(const std::string& text) {
  static const std::pair<const char*, uint64_t> kUnits[] = {{"GB", 1000000000}, {"MB", 1000000}, {"KB", 1000}, {"B", 1}};
  for (const auto& [suffix, scale] : kUnits) {
    absl::string_view number(text);
    if (absl::ConsumeSuffix(&number, suffix) || scale == 1) {
      uint64_t value;
      if (absl::SimpleAtoi(number, &value) && value > 0) return value * scale;
      break;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("--max-shard-size '", text, "' is not a size like 64KB, 500MB or 5GB"));
}

absl::Status MakeModel(const Args& args) {
  QLORAD_ASSIGN_OR_RETURN(
      Flags flags, Flags::Parse(args,
                                {"arch", "layers", "hidden", "heads", "kv-heads", "intermediate", "vocab", "dtype",
                                 "tokenizer", "seed", "out", "max-shard-size", "max-positions"},
                                {"tie-embeddings", "help"}));
  if (flags.GetBool("help")) {
    std::fputs(kUsage, stdout);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(std::string arch, flags.GetRequired("arch"));
  if (arch != "llama" && arch != "mistral" && arch != "qwen2")
    return absl::InvalidArgumentError(absl::StrCat("--arch '", arch, "' is not one of llama, mistral, qwen2"));
  QLORAD_ASSIGN_OR_RETURN(long long layers, flags.GetInt("layers", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(long long hidden, flags.GetInt("hidden", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(long long heads, flags.GetInt("heads", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(long long kv_heads, flags.GetInt("kv-heads", heads));
  QLORAD_ASSIGN_OR_RETURN(long long intermediate, flags.GetInt("intermediate", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(long long vocab, flags.GetInt("vocab", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(long long seed, flags.GetInt("seed", std::nullopt));
  QLORAD_ASSIGN_OR_RETURN(long long positions, flags.GetInt("max-positions", 4096));
  QLORAD_ASSIGN_OR_RETURN(std::string out, flags.GetRequired("out"));
  if (heads <= 0 || hidden % heads != 0)
    return absl::InvalidArgumentError("--hidden must be a positive multiple of --heads");

  RandomModelOptions options;
  options.config = MakeConfig(arch, layers, hidden, heads, kv_heads, intermediate, vocab, flags.GetBool("tie-embeddings"));
  options.config.max_position_embeddings = positions;
  std::string dtype = flags.GetOr("dtype", "f32");
  if (dtype != "f32" && dtype != "bf16") return absl::InvalidArgumentError("--dtype must be f32 or bf16");
  options.dtype = dtype == "bf16" ? DType::kBF16 : DType::kF32;
  options.seed = static_cast<uint64_t>(seed);
  if (flags.Has("max-shard-size")) {
    QLORAD_ASSIGN_OR_RETURN(options.max_shard_bytes, ParseByteSize(flags.GetOr("max-shard-size", "")));
  }
  options.tokenizer_path = flags.GetOr("tokenizer", "");
  QLORAD_RETURN_IF_ERROR(WriteRandomModel(out, options));
  std::printf("wrote %s model with %lld parameters to %s\n", arch.c_str(),
              static_cast<long long>(options.config.ParameterCount()), out.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunMakeModel(const Args& args) { return ReportStatus("make-model", MakeModel(args)); }

}  // namespace qlorad::tool
