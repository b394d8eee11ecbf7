// qlorad-tool make-adapter: a seeded random PEFT LoRA adapter for a model directory
// (non-zero B, so it changes outputs): fixtures for serving tests and benchmarks.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/model/checkpoint.h"
#include "core/model/config.h"
#include "core/model/fingerprint.h"
#include "core/serve/random_adapter.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool make-adapter --model DIR --out DIR [--rank 16] [--alpha 32] [--seed 0] [--std 0.02]\n"
    "         [--targets q_proj,k_proj,...] [--no-fingerprint]\n"
    "  Records the model's fingerprint so the daemon accepts it for that base.\n";

absl::Status MakeAdapter(const Args& args) {
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"model", "out", "rank", "alpha", "seed", "std", "targets"},
                                                    {"no-fingerprint", "help"}));
  if (flags.GetBool("help")) {
    std::fputs(kUsage, stdout);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(std::string model, flags.GetRequired("model"));
  QLORAD_ASSIGN_OR_RETURN(std::string out, flags.GetRequired("out"));
  QLORAD_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model));
  serve::RandomAdapterOptions options;
  QLORAD_ASSIGN_OR_RETURN(options.lora.r, flags.GetInt("rank", 16));
  QLORAD_ASSIGN_OR_RETURN(options.lora.alpha, flags.GetDouble("alpha", 2.0 * options.lora.r));
  QLORAD_ASSIGN_OR_RETURN(long long seed, flags.GetInt("seed", 0));
  options.seed = static_cast<uint64_t>(seed);
  QLORAD_ASSIGN_OR_RETURN(options.a_std, flags.GetDouble("std", 0.02));
  options.b_std = options.a_std;
  if (flags.Has("targets")) options.lora.target_modules = absl::StrSplit(flags.GetOr("targets", ""), ',');
  options.base_model = model;
  if (!flags.GetBool("no-fingerprint")) {
    QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(model));
    QLORAD_ASSIGN_OR_RETURN(options.base_fingerprint, ModelFingerprint(model, config, *checkpoint));
  }
  QLORAD_RETURN_IF_ERROR(serve::WriteRandomAdapter(out, config, options));
  std::printf("wrote r=%lld adapter (seed %lld) for %s to %s\n", static_cast<long long>(options.lora.r), seed,
              model.c_str(), out.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunMakeAdapter(const Args& args) { return ReportStatus("make-adapter", MakeAdapter(args)); }

}  // namespace qlorad::tool
