// Autoregressive generation for one prompt: prefill, then incremental decode
// with the KV cache until max_tokens or a stop token.
#ifndef QLORAD_CORE_MODEL_GENERATE_H_
#define QLORAD_CORE_MODEL_GENERATE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/fused_decoder.h"
#include "core/model/llama.h"
#include "core/model/sampler.h"

namespace qlorad {

struct GenerationOptions {
  int64_t max_tokens = 32;
  SamplingOptions sampling;
  std::vector<int64_t> stop_token_ids;  // generation ends after emitting one
  // fp32 on the CPU: decode steps after the prefill run through FusedDecoder
  // (fused_decoder.h; equal up to fp32 summation order). false: libtorch for every step.
  bool fused_decode = true;
  // The fused path's head storage and activation precision (fused_decoder.h,
  // --serve-head, --activations).
  FusedDecoderOptions fused = {};
};

enum class FinishReason { kLength, kStop, kCancelled };

struct GenerationResult {
  std::vector<int64_t> tokens;  // generated ids only (prompt excluded)
  FinishReason finish_reason = FinishReason::kLength;
};

// Called with each new token; returning false cancels generation.
using TokenCallback = std::function<bool(int64_t token)>;

// INVALID_ARGUMENT for an empty prompt, an out-of-vocabulary id (named by
// position), or a prompt + max_tokens longer than max_position_embeddings.
absl::StatusOr<GenerationResult> Generate(LlamaModel& model, const std::vector<int64_t>& prompt,
                                          const GenerationOptions& options, const TokenCallback& on_token = nullptr);

// Checks that every id is within [0, vocab); the error names the first bad position.
absl::Status ValidateTokenIds(const std::vector<int64_t>& ids, int64_t vocab, const char* what);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_GENERATE_H_
