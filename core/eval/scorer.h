// Scorer: what the evaluation runner needs from a model — the per-example output of the
// base or an adapter. core/eval stays torch-free and engine-free; the daemon implements
// this with its serving engine (core/service/engine_scorer.h), tests with a fake.
#ifndef QLORAD_CORE_EVAL_SCORER_H_
#define QLORAD_CORE_EVAL_SCORER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qlorad::eval {

class Scorer {
 public:
  virtual ~Scorer() = default;

  // The base model's fingerprint and the prompt format requests are rendered with
  // (both go into the baseline key: a baseline is reused only for the same pair).
  virtual std::string base_fingerprint() const = 0;
  virtual std::string prompt_format() const = 0;
  // The label predicted for `text` by `adapter_id` ("" = the base) under `scoring`
  // (log_likelihood | constrained | generation).
  virtual absl::StatusOr<std::string> Classify(const std::string& adapter_id, const std::string& text,
                                               const std::vector<std::string>& labels, const std::string& scoring) = 0;
  // The greedy completion of `prompt` (+ `input`, Alpaca style) by `adapter_id`.
  virtual absl::StatusOr<std::string> Generate(const std::string& adapter_id, const std::string& prompt,
                                               const std::string& input, int64_t max_new_tokens) = 0;
  // The summed log-likelihood of each completion of `prompt` (rendered as the trainer
  // renders prompt/completion and preference examples) under `adapter_id`. Preference
  // hold-outs need it; the default is UNIMPLEMENTED.
  virtual absl::StatusOr<std::vector<double>> CompletionLogLikelihoods(const std::string& adapter_id,
                                                                       const std::string& prompt,
                                                                       const std::vector<std::string>& completions) {
    (void)adapter_id, (void)prompt, (void)completions;
    return absl::UnimplementedError("this scorer does not score completions");
  }
};

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_SCORER_H_
