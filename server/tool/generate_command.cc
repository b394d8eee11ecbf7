// qlorad-tool generate: greedy or sampled generation from prompt token ids.
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/generate.h"
#include "core/model/loader.h"
#include "core/quant/nf4_model.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"
#include "server/tool/model_flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool generate --prompt-tokens 1,5,9 [--max-tokens N] [--temperature T]\n"
    "       [--top-k K] [--top-p P] [--seed S] [--stop 2,7] [--serve-head fp32|bf16|int8|nf4]\n"
    "       [--activations fp32|int8] <model flags>\n"
    "  --serve-head   storage of the vocabulary head on the fused CPU decode path (default int8 where\n"
    "                 the head is a dense fp32 CPU layer, else fp32; choose-serve-head checks a deployment)\n"
    "  --activations  int8: 4-bit layers (--quantize nf4, --serve-head nf4) take 8-bit activations\n"
    "                 and integer dot products on that path (approximate; default fp32)\n";

absl::Status GenerateTokens(const Args& args) {
  std::set<std::string> value_flags = kModelValueFlags, bool_flags = kModelBoolFlags;
  value_flags.insert({"prompt-tokens", "max-tokens", "temperature", "top-k", "top-p", "seed", "stop", "serve-head",
                      "activations"});
  bool_flags.insert("help");
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, value_flags, bool_flags));
  if (flags.GetBool("help")) {
    std::printf("%s%s", kUsage, kModelUsage);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(std::string model_dir, flags.GetRequired("model"));
  QLORAD_ASSIGN_OR_RETURN(std::string prompt_text, flags.GetRequired("prompt-tokens"));
  QLORAD_ASSIGN_OR_RETURN(std::vector<long long> prompt, ParseIntList("prompt-tokens", prompt_text));
  GenerationOptions gen;
  QLORAD_ASSIGN_OR_RETURN(gen.max_tokens, flags.GetInt("max-tokens", 16));
  QLORAD_ASSIGN_OR_RETURN(gen.sampling.temperature, flags.GetDouble("temperature", 0.0));
  QLORAD_ASSIGN_OR_RETURN(gen.sampling.top_k, flags.GetInt("top-k", 0));
  QLORAD_ASSIGN_OR_RETURN(gen.sampling.top_p, flags.GetDouble("top-p", 1.0));
  QLORAD_ASSIGN_OR_RETURN(long long seed, flags.GetInt("seed", 0));
  gen.sampling.seed = static_cast<uint64_t>(seed);
  QLORAD_ASSIGN_OR_RETURN(gen.fused, ParseFusedDecoderOptions(flags.GetOr("serve-head", "fp32"),
                                                               flags.GetOr("activations", "fp32")));
  const bool default_head = !flags.Has("serve-head");
  if (flags.Has("stop")) {
    QLORAD_ASSIGN_OR_RETURN(std::vector<long long> stop, ParseIntList("stop", flags.GetOr("stop", "")));
    gen.stop_token_ids.assign(stop.begin(), stop.end());
  }
  QLORAD_ASSIGN_OR_RETURN(ToolModel model, LoadModelFromFlags(flags, "auto"));
  LoadedModel& loaded = model.loaded;
  if (default_head) gen.fused.head = DefaultServeHead(loaded.model);
  if (model.quantized) {
    QuantizedFootprint footprint = MeasureQuantizedFootprint(loaded.model);
    std::printf("4-bit linear layers: %.1fM parameters in %.1f MB (%.3f bytes/parameter)\n", footprint.parameters / 1e6,
                footprint.bytes / 1e6, footprint.BytesPerParameter());
  }
  if (gen.stop_token_ids.empty()) gen.stop_token_ids = loaded.config.eos_token_ids;
  auto start = std::chrono::steady_clock::now();
  QLORAD_ASSIGN_OR_RETURN(GenerationResult result,
                          Generate(loaded.model, std::vector<int64_t>(prompt.begin(), prompt.end()), gen));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("model: %s (%s, fingerprint %s, device %s, serve head %s)\n", model_dir.c_str(),
              loaded.config.architecture.c_str(), loaded.fingerprint.c_str(), loaded.model->device().str().c_str(),
              HeadPrecisionName(gen.fused.head));
  std::printf("prompt: [%s]\ngenerated: [%s]\n", absl::StrJoin(prompt, ",").c_str(),
              absl::StrJoin(result.tokens, ",").c_str());
  if (auto tok = tokenizer::Tokenizer::Load(model_dir); tok.ok()) {
    std::vector<int32_t> ids(result.tokens.begin(), result.tokens.end());
    std::printf("text: %s\n", (*tok)->Decode(ids).c_str());
  }
  std::printf("%zu tokens in %.3f s (%.1f tokens/s), finish: %s\n", result.tokens.size(), seconds,
              result.tokens.size() / std::max(seconds, 1e-9),
              result.finish_reason == FinishReason::kStop ? "stop" : "length");
  return absl::OkStatus();
}

}  // namespace

int RunGenerate(const Args& args) { return ReportStatus("generate", GenerateTokens(args)); }

}  // namespace qlorad::tool
