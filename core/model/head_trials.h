// Evidence for choosing a deployment's --serve-head: the same prompts decoded greedily on
// the fused CPU path (fused_decoder.h) once per head precision, with each run's tokens,
// speed and agreement with the fp32 head. Deciding what is close enough (a hold-out
// metric, a tolerance) is the caller's (server/tool's choose-serve-head).
#ifndef QLORAD_CORE_MODEL_HEAD_TRIALS_H_
#define QLORAD_CORE_MODEL_HEAD_TRIALS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/fused_decoder.h"
#include "core/model/llama.h"

namespace qlorad {

struct HeadTrialOptions {
  // Tried in this order; the first must be kFp32 (the reference of the agreement).
  std::vector<HeadPrecision> heads = {HeadPrecision::kFp32, HeadPrecision::kBf16, HeadPrecision::kInt8,
                                      HeadPrecision::kNf4};
  int64_t max_new_tokens = 8;
  std::vector<int64_t> stop_ids;  // a continuation ends after the first of these
  bool int8_activations = false;  // FusedDecoderOptions::int8_activations for every trial
};

struct HeadTrial {
  HeadPrecision head = HeadPrecision::kFp32;
  std::vector<std::vector<int64_t>> continuations;  // per prompt, the greedy tokens
  // Of the fp32 trial's generated tokens, the share this trial reproduced before its
  // first differing token (per prompt, summed over prompts); 1 for the fp32 trial.
  double token_agreement = 1.0;
  double identical_share = 1.0;  // prompts whose whole continuation equals fp32's
  double decode_tokens_per_second = 0;  // fused decode steps only (prefill excluded)
};

// For every head in options.heads: each prompt's first n − 1 tokens are prefilled on the
// libtorch path, then its last token and every generated one go through the fused decoder,
// so the head under trial picks every generated token. The model is shared and never
// changed. INVALID_ARGUMENT for an empty prompt list or prompt, or when heads does not
// start with kFp32; the fused decoder's own errors (FAILED_PRECONDITION) otherwise.
absl::StatusOr<std::vector<HeadTrial>> RunHeadTrials(LlamaModel model, const std::vector<std::vector<int64_t>>& prompts,
                                                     const HeadTrialOptions& options);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_HEAD_TRIALS_H_
