// Direct Preference Optimization's pieces (Rafailov et al., 2023, "sigmoid" loss as in
// TRL's DPOTrainer): the summed completion log-probability of each row, the loss over
// policy and reference log-probabilities of (chosen, rejected) pairs, and the implicit
// rewards r = beta · (log π(y|x) − log π_ref(y|x)). For LoRA the reference model is the
// frozen base: the same model with its adapters disabled (PEFT's disable_adapter()).
// Internal to core/train.
#ifndef QLORAD_CORE_TRAIN_DPO_LOSS_H_
#define QLORAD_CORE_TRAIN_DPO_LOSS_H_

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "core/adapter/peft_weights.h"
#include "core/model/llama.h"
#include "core/train/trainer.h"
#include "core/train/training_batch.h"

namespace qlorad {

// Disables every adapter in `modules` until destruction (then restores each one's state).
class ScopedAdaptersDisabled {
 public:
  explicit ScopedAdaptersDisabled(LoraModules& modules);
  ~ScopedAdaptersDisabled();
  ScopedAdaptersDisabled(const ScopedAdaptersDisabled&) = delete;
  ScopedAdaptersDisabled& operator=(const ScopedAdaptersDisabled&) = delete;

 private:
  LoraModules& modules_;
  std::vector<bool> was_enabled_;
};

// Per row of `batch`: the sum of log p(target) over its trained (completion) positions,
// fp32 [B] on the model's device; differentiable when grad mode is on.
at::Tensor SequenceLogProbs(LlamaModel& model, const Batch& batch);

// One batch of pairs. All inputs [P] fp32: summed completion log-probs of the chosen and
// rejected completions under the policy (with gradient) and the reference.
struct DpoTerms {
  at::Tensor losses;            // [P] −log σ(beta · ((πc − rc) − (πr − rr)))
  at::Tensor chosen_rewards;    // [P] beta · (πc − rc), detached
  at::Tensor rejected_rewards;  // [P] beta · (πr − rr), detached
};
DpoTerms DpoLoss(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected,
                 const at::Tensor& reference_chosen, const at::Tensor& reference_rejected, double beta);

// Summed completion log-probs of every pair's two completions, with the adapters enabled
// (policy) and disabled (reference, the base), in eval mode without gradient.
struct PreferenceScores {
  std::vector<double> policy_chosen, policy_rejected, reference_chosen, reference_rejected;
};
absl::StatusOr<PreferenceScores> ScorePreferences(LlamaModel& model, LoraModules& modules,
                                                  const std::vector<PreferencePair>& pairs, int64_t batch_size,
                                                  int64_t max_seq_len);

// The policy's (the model as it is) log-probs of every pair, [P, 2] fp64 on the CPU
// (column 0 chosen, 1 rejected), in eval mode without gradient.
absl::StatusOr<at::Tensor> PolicyLogProbs(LlamaModel& model, const std::vector<PreferencePair>& pairs,
                                          int64_t batch_size, int64_t max_seq_len);

// PolicyLogProbs with the adapters disabled: the reference model's.
absl::StatusOr<at::Tensor> ReferenceLogProbs(LlamaModel& model, LoraModules& modules,
                                             const std::vector<PreferencePair>& pairs, int64_t batch_size,
                                             int64_t max_seq_len);

// The scores of pairs from their [P, 2] policy and reference log-probs.
PreferenceScores ToPreferenceScores(const at::Tensor& policy, const at::Tensor& reference);

// DpoMetrics (trainer.h) of scored pairs at `beta`.
DpoMetrics SummarizePreferences(const PreferenceScores& scores, double beta);

// The pairs' two completions as rows [c0, r0, c1, r1, ...] (pair i: rows 2i and 2i + 1).
std::vector<TrainingExample> InterleavePairs(const std::vector<PreferencePair>& pairs);

// INVALID_ARGUMENT naming the pair when a completion has no trained token, the ids and
// mask differ in length, or a token is out of the vocabulary.
absl::Status CheckPairs(const std::vector<PreferencePair>& pairs, int64_t vocab);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_DPO_LOSS_H_
