// qlorad-tool logits: one forward pass; writes every position's logits as raw
// little-endian fp32, shape [tokens, vocab]. External checks rely on this interface.
#include <cstdio>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/model/fused_decoder.h"
#include "core/model/generate.h"
#include "core/model/loader.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"
#include "server/tool/model_flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool logits --tokens 1,5,9 --out FILE [--incremental [--fused [--serve-head H]\n"
    "       [--activations fp32|int8]]] <model flags>\n"
    "  --incremental  decode token by token through the KV cache instead of one pass\n"
    "  --fused        ... through the fused CPU decode kernels (fp32 on the CPU only), with the\n"
    "                 head and activation precisions of `qlorad-tool generate`\n";

// Every position's logits, one FusedDecoder step per token.
absl::StatusOr<at::Tensor> FusedForward(LlamaModel& model, const std::vector<int64_t>& tokens,
                                        const FusedDecoderOptions& options) {
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<FusedDecoder> decoder, FusedDecoder::Create(model, options));
  auto cache = model->NewCache(1, static_cast<int64_t>(tokens.size()));
  std::vector<at::Tensor> rows;
  for (int64_t token : tokens) {
    QLORAD_ASSIGN_OR_RETURN(at::Tensor logits, decoder->Step(*cache, {token}));
    rows.push_back(logits.clone());
  }
  return at::cat(rows, 0);
}

absl::StatusOr<at::Tensor> Forward(LlamaModel& model, const std::vector<int64_t>& tokens, bool incremental) {
  return CatchTorchErrors("forward", [&]() -> absl::StatusOr<at::Tensor> {
    at::NoGradGuard no_grad;
    at::Tensor ids = at::tensor(tokens, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
    if (!incremental) return model->forward({ids, {}, {}, nullptr})[0];
    auto cache = model->NewCache(1, ids.size(1));
    std::vector<at::Tensor> rows;
    for (int64_t i = 0; i < ids.size(1); ++i) rows.push_back(model->forward({ids.narrow(1, i, 1), {}, {}, cache.get()})[0]);
    return at::cat(rows, 0);
  });
}

absl::Status Logits(const Args& args) {
  std::set<std::string> value_flags = kModelValueFlags, bool_flags = kModelBoolFlags;
  value_flags.insert({"tokens", "out", "serve-head", "activations"});
  bool_flags.insert({"incremental", "fused", "help"});
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, value_flags, bool_flags));
  if (flags.GetBool("help")) {
    std::printf("%s%s", kUsage, kModelUsage);
    return absl::OkStatus();
  }
  QLORAD_ASSIGN_OR_RETURN(std::string token_text, flags.GetRequired("tokens"));
  QLORAD_ASSIGN_OR_RETURN(std::string out, flags.GetRequired("out"));
  QLORAD_ASSIGN_OR_RETURN(std::vector<long long> parsed, ParseIntList("tokens", token_text));
  std::vector<int64_t> tokens(parsed.begin(), parsed.end());
  QLORAD_ASSIGN_OR_RETURN(ToolModel model, LoadModelFromFlags(flags, "cpu"));
  LoadedModel& loaded = model.loaded;
  QLORAD_RETURN_IF_ERROR(ValidateTokenIds(tokens, loaded.config.vocab_size, "--tokens"));
  if (const std::string reason = loaded.config.ContextLimitReason();
      !reason.empty() && static_cast<int64_t>(tokens.size()) > loaded.config.ContextLimit())
    return absl::InvalidArgumentError(absl::StrCat("--tokens: ", tokens.size(), " tokens exceed the ", reason,
                                                   " (hint: at most ", loaded.config.ContextLimit(), " tokens)"));
  if (flags.GetBool("fused") && !flags.GetBool("incremental"))
    return absl::InvalidArgumentError("--fused: decodes token by token (hint: add --incremental)");
  if ((flags.Has("serve-head") || flags.Has("activations")) && !flags.GetBool("fused"))
    return absl::InvalidArgumentError("--serve-head/--activations: fused path only (hint: add --incremental --fused)");
  QLORAD_ASSIGN_OR_RETURN(FusedDecoderOptions fused, ParseFusedDecoderOptions(flags.GetOr("serve-head", "fp32"),
                                                                                flags.GetOr("activations", "fp32")));
  QLORAD_ASSIGN_OR_RETURN(at::Tensor logits, flags.GetBool("fused") ? FusedForward(loaded.model, tokens, fused)
                                                                     : Forward(loaded.model, tokens, flags.GetBool("incremental")));
  at::Tensor cpu = logits.to(at::kCPU, at::kFloat).contiguous();
  return WriteFileAtomically(out, std::string_view(static_cast<const char*>(cpu.data_ptr()), cpu.nbytes()));
}

}  // namespace

int RunLogits(const Args& args) { return ReportStatus("logits", Logits(args)); }

}  // namespace qlorad::tool
