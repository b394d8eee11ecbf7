#include "core/model/head_trials.h"

#include <algorithm>
#include <chrono>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {
namespace {

// The greedy continuation of `prompt` through `decoder`; adds the decode seconds spent.
// May throw (libtorch): called inside CatchTorchErrors.
absl::StatusOr<std::vector<int64_t>> GreedyContinuation(LlamaModel& model, FusedDecoder& decoder,
                                                        const std::vector<int64_t>& prompt,
                                                        const HeadTrialOptions& options, double* decode_seconds) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  auto cache = model->NewCache(1, n + options.max_new_tokens);
  if (n > 1) {
    at::Tensor ids = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end() - 1), at::kLong).unsqueeze(0);
    model->forward({ids, {}, {}, cache.get()});
  }
  std::vector<int64_t> generated;
  int64_t next = prompt.back();
  const auto start = std::chrono::steady_clock::now();
  while (static_cast<int64_t>(generated.size()) < options.max_new_tokens) {
    QLORAD_ASSIGN_OR_RETURN(at::Tensor logits, decoder.Step(*cache, {next}));
    next = logits[0].argmax().item<int64_t>();
    generated.push_back(next);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) break;
  }
  *decode_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return generated;
}

// Sets trial.token_agreement and identical_share against the fp32 trial.
void CompareWithReference(const HeadTrial& reference, HeadTrial& trial) {
  int64_t reference_tokens = 0, reproduced = 0, identical = 0;
  for (size_t p = 0; p < reference.continuations.size(); ++p) {
    const auto& want = reference.continuations[p];
    const auto& got = trial.continuations[p];
    const auto [want_end, got_end] = std::mismatch(want.begin(), want.end(), got.begin(), got.end());
    reference_tokens += static_cast<int64_t>(want.size());
    reproduced += want_end - want.begin();
    identical += (want_end == want.end() && got_end == got.end()) ? 1 : 0;
  }
  trial.token_agreement = reference_tokens == 0 ? 1.0 : static_cast<double>(reproduced) / reference_tokens;
  trial.identical_share = static_cast<double>(identical) / static_cast<double>(reference.continuations.size());
}

}  // namespace

absl::StatusOr<std::vector<HeadTrial>> RunHeadTrials(LlamaModel model, const std::vector<std::vector<int64_t>>& prompts,
                                                     const HeadTrialOptions& options) {
  if (prompts.empty()) return absl::InvalidArgumentError("prompts: none given");
  for (size_t p = 0; p < prompts.size(); ++p)
    if (prompts[p].empty()) return absl::InvalidArgumentError(absl::StrCat("prompts[", p, "]: empty"));
  if (options.heads.empty() || options.heads.front() != HeadPrecision::kFp32)
    return absl::InvalidArgumentError("heads: the first trial must be fp32, the reference of the agreement");
  if (options.max_new_tokens < 1) return absl::InvalidArgumentError("max_new_tokens: must be at least 1");
  at::NoGradGuard no_grad;
  std::vector<HeadTrial> trials;
  for (HeadPrecision head : options.heads) {
    FusedDecoderOptions decoder_options;
    decoder_options.head = head;
    decoder_options.int8_activations = options.int8_activations;
    QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<FusedDecoder> decoder, FusedDecoder::Create(model, decoder_options));
    HeadTrial trial;
    trial.head = head;
    double seconds = 0;
    int64_t steps = 0;
    for (const auto& prompt : prompts) {
      QLORAD_ASSIGN_OR_RETURN(std::vector<int64_t> tokens, CatchTorchErrors("greedy decoding", [&] {
                                return GreedyContinuation(model, *decoder, prompt, options, &seconds);
                              }));
      steps += static_cast<int64_t>(tokens.size());
      trial.continuations.push_back(std::move(tokens));
    }
    trial.decode_tokens_per_second = steps / std::max(seconds, 1e-9);
    if (!trials.empty()) CompareWithReference(trials.front(), trial);
    trials.push_back(std::move(trial));
  }
  return trials;
}

}  // namespace qlorad
