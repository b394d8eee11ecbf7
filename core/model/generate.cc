#include "core/model/generate.h"

#include <algorithm>

#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/model/fused_decoder.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {

absl::Status ValidateTokenIds(const std::vector<int64_t>& ids, int64_t vocab, const char* what) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      return absl::InvalidArgumentError(
          absl::StrCat(what, "[", i, "] = ", ids[i], " is outside the vocabulary [0, ", vocab, ")"));
  return absl::OkStatus();
}

absl::StatusOr<GenerationResult> Generate(LlamaModel& model, const std::vector<int64_t>& prompt,
                                          const GenerationOptions& options, const TokenCallback& on_token) {
  const ModelConfig& config = model->config();
  if (prompt.empty()) return absl::InvalidArgumentError("prompt is empty (hint: at least one token, e.g. BOS)");
  QLORAD_RETURN_IF_ERROR(ValidateTokenIds(prompt, config.vocab_size, "prompt"));
  QLORAD_RETURN_IF_ERROR(ValidateSamplingOptions(options.sampling));
  if (options.max_tokens < 0) return absl::InvalidArgumentError("max_tokens must be >= 0");
  const int64_t capacity = static_cast<int64_t>(prompt.size()) + options.max_tokens;
  if (capacity > config.ContextLimit()) {
    const std::string reason = config.ContextLimitReason();
    return absl::InvalidArgumentError(absl::StrCat("prompt (", prompt.size(), " tokens) + max_tokens (", options.max_tokens,
                                                   ") exceeds ", reason.empty() ? "max_position_embeddings " : "",
                                                   config.ContextLimit(), reason.empty() ? "" : " positions: the ", reason,
                                                   " (hint: shorten the prompt or ask for fewer tokens)"));
  }
  return CatchTorchErrors("generate", [&]() -> absl::StatusOr<GenerationResult> {
    at::NoGradGuard no_grad;
    GenerationResult result;
    Sampler sampler(options.sampling);
    auto cache = model->NewCache(1, std::max<int64_t>(capacity, 1));
    std::unique_ptr<FusedDecoder> fused;
    if (options.fused_decode && model->device().is_cpu() && model->dtype() == at::kFloat) {
      QLORAD_ASSIGN_OR_RETURN(fused, FusedDecoder::Create(model, options.fused));
    }
    auto long_options = at::TensorOptions().dtype(at::kLong);
    at::Tensor input = at::tensor(prompt, long_options).unsqueeze(0);
    int64_t token = -1;
    for (int64_t step = 0; step < options.max_tokens; ++step) {
      at::Tensor logits;
      if (step > 0 && fused != nullptr) {
        QLORAD_ASSIGN_OR_RETURN(logits, fused->Step(*cache, {token}));
        logits = logits.unsqueeze(1);
      } else {
        logits = model->forward({input, {}, {}, cache.get()});
      }
      token = sampler.Next(logits[0][-1]);
      result.tokens.push_back(token);
      if (on_token && !on_token(token)) {
        result.finish_reason = FinishReason::kCancelled;
        break;
      }
      if (std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), token) != options.stop_token_ids.end()) {
        result.finish_reason = FinishReason::kStop;
        break;
      }
      input = at::full({1, 1}, token, long_options);
    }
    return result;
  });
}

}  // namespace qlorad
