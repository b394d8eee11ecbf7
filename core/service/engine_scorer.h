// EngineScorer: core/eval's Scorer on the daemon's serving engine — how an evaluation
// gets each example's output: classification by label log-likelihood, constrained
// choice, or a short greedy generation matched to a label; generation tasks greedily.
#ifndef QLORAD_CORE_SERVICE_ENGINE_SCORER_H_
#define QLORAD_CORE_SERVICE_ENGINE_SCORER_H_

#include <string>
#include <vector>

#include "core/eval/scorer.h"
#include "core/serve/serving_engine.h"

namespace qlorad::service {

class EngineScorer : public eval::Scorer {
 public:
  explicit EngineScorer(serve::ServingEngine* engine) : engine_(engine) {}

  std::string base_fingerprint() const override { return engine_->fingerprint(); }
  std::string prompt_format() const override;
  absl::StatusOr<std::string> Classify(const std::string& adapter_id, const std::string& text,
                                       const std::vector<std::string>& labels, const std::string& scoring) override;
  absl::StatusOr<std::string> Generate(const std::string& adapter_id, const std::string& prompt,
                                       const std::string& input, int64_t max_new_tokens) override;
  absl::StatusOr<std::vector<double>> CompletionLogLikelihoods(const std::string& adapter_id, const std::string& prompt,
                                                               const std::vector<std::string>& completions) override;

 private:
  serve::ServingEngine* engine_;
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_ENGINE_SCORER_H_
