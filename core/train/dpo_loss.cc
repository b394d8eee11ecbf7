#include "core/train/dpo_loss.h"

#include <algorithm>
#include <functional>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/train/chunked_loss.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {

ScopedAdaptersDisabled::ScopedAdaptersDisabled(LoraModules& modules) : modules_(modules) {
  for (auto& [name, layer] : modules_) {
    was_enabled_.push_back(layer->adapter_enabled());
    layer->set_adapter_enabled(false);
  }
}

ScopedAdaptersDisabled::~ScopedAdaptersDisabled() {
  size_t i = 0;
  for (auto& [name, layer] : modules_) layer->set_adapter_enabled(was_enabled_[i++]);
}

at::Tensor SequenceLogProbs(LlamaModel& model, const Batch& batch) {
  const c10::Device device = model->device();
  ForwardInput input{batch.ids.to(device), {}, batch.mask.to(device), nullptr};
  const at::Tensor hidden = model->Hidden(input);
  const int64_t rows = batch.ids.size(0), len = batch.ids.size(1);
  const at::Tensor positions = batch.weights.flatten().nonzero().squeeze(1).to(device);
  at::Tensor sums = at::zeros({rows}, hidden.options().dtype(at::kFloat));
  if (positions.numel() == 0) return sums + hidden.sum().mul(0.0).to(at::kFloat);
  const at::Tensor picked = hidden.flatten(0, 1).index_select(0, positions);
  const at::Tensor targets = batch.targets.flatten().to(device).index_select(0, positions);
  // The head runs on completion positions only, a chunk at a time (each chunk's
  // log-softmax is kept for backward, so memory still grows with completion tokens).
  const int64_t chunk = HeadChunkRows(model->config().vocab_size);
  std::vector<at::Tensor> picked_logp;
  for (int64_t start = 0; start < picked.size(0); start += chunk) {
    const int64_t end = std::min(picked.size(0), start + chunk);
    const at::Tensor logits = model->lm_head().forward(picked.slice(0, start, end)).to(at::kFloat);
    picked_logp.push_back(at::log_softmax(logits, -1).gather(1, targets.slice(0, start, end).unsqueeze(1)).squeeze(1));
  }
  return sums.index_add(0, at::div(positions, len, "floor"), at::cat(picked_logp));
}

DpoTerms DpoLoss(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected,
                 const at::Tensor& reference_chosen, const at::Tensor& reference_rejected, double beta) {
  const at::Tensor chosen_ratio = policy_chosen - reference_chosen;
  const at::Tensor rejected_ratio = policy_rejected - reference_rejected;
  DpoTerms terms;
  terms.losses = -at::log_sigmoid(beta * (chosen_ratio - rejected_ratio));
  terms.chosen_rewards = (beta * chosen_ratio).detach();
  terms.rejected_rewards = (beta * rejected_ratio).detach();
  return terms;
}

std::vector<TrainingExample> InterleavePairs(const std::vector<PreferencePair>& pairs) {
  std::vector<TrainingExample> rows;
  rows.reserve(2 * pairs.size());
  for (const PreferencePair& pair : pairs) {
    rows.push_back(pair.chosen);
    rows.push_back(pair.rejected);
  }
  return rows;
}

absl::Status CheckPairs(const std::vector<PreferencePair>& pairs, int64_t vocab) {
  if (pairs.empty()) return absl::InvalidArgumentError("no preference pairs");
  for (size_t i = 0; i < pairs.size(); ++i) {
    for (const auto* side : {&pairs[i].chosen, &pairs[i].rejected}) {
      const char* name = side == &pairs[i].chosen ? "chosen" : "rejected";
      if (side->ids.size() != side->trainable.size() || side->ids.size() < 2)
        return absl::InvalidArgumentError(absl::StrCat("pair ", i, " ", name, ": ids and trainable mask must match (>= 2 tokens)"));
      if (std::find(side->trainable.begin() + 1, side->trainable.end(), 1) == side->trainable.end())
        return absl::InvalidArgumentError(absl::StrCat("pair ", i, " ", name, " has no completion token"));
      for (int64_t id : side->ids)
        if (id < 0 || id >= vocab)
          return absl::InvalidArgumentError(absl::StrCat("pair ", i, " ", name, ": token id ", id, " out of vocabulary"));
    }
  }
  return absl::OkStatus();
}

namespace {

// Summed completion log-probs of every row of InterleavePairs(pairs), [2P] fp64 on the
// CPU. The caller holds NoGradGuard and eval mode.
at::Tensor ScoreRows(LlamaModel& model, const std::vector<TrainingExample>& rows, int64_t batch_size,
                     int64_t max_seq_len) {
  std::vector<at::Tensor> parts;
  const size_t step = 2 * static_cast<size_t>(batch_size);
  for (size_t first = 0; first < rows.size(); first += step) {
    std::vector<size_t> batch_rows;
    for (size_t r = first; r < std::min(rows.size(), first + step); ++r) batch_rows.push_back(r);
    parts.push_back(SequenceLogProbs(model, MakeBatch(rows, batch_rows, max_seq_len)).to(at::kDouble).cpu());
  }
  return at::cat(parts);
}

std::vector<double> Column(const at::Tensor& interleaved, int64_t column) {
  const at::Tensor c = interleaved.view({-1, 2}).select(1, column).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Runs `score` under NoGradGuard in eval mode (restoring train mode) after checking the pairs.
absl::StatusOr<at::Tensor> ScoreScoped(LlamaModel& model, const std::vector<PreferencePair>& pairs, int64_t batch_size,
                                       const std::function<at::Tensor()>& score) {
  if (const absl::Status s = CheckPairs(pairs, model->config().vocab_size); !s.ok()) return s;
  if (batch_size < 1) return absl::InvalidArgumentError("batch_size must be >= 1");
  return CatchTorchErrors("scoring preference pairs", [&]() -> absl::StatusOr<at::Tensor> {
    at::NoGradGuard no_grad;
    struct EvalMode {  // eval mode for the scoring, the caller's mode again afterwards (also on a throw)
      LlamaModel& model;
      const bool was_training = model->is_training();
      ~EvalMode() { model->train(was_training); }
    } eval_mode{model};
    model->eval();
    return score();
  });
}

}  // namespace

absl::StatusOr<at::Tensor> PolicyLogProbs(LlamaModel& model, const std::vector<PreferencePair>& pairs,
                                          int64_t batch_size, int64_t max_seq_len) {
  const std::vector<TrainingExample> rows = InterleavePairs(pairs);
  return ScoreScoped(model, pairs, batch_size,
                     [&] { return ScoreRows(model, rows, batch_size, max_seq_len).view({-1, 2}); });
}

absl::StatusOr<at::Tensor> ReferenceLogProbs(LlamaModel& model, LoraModules& modules,
                                             const std::vector<PreferencePair>& pairs, int64_t batch_size,
                                             int64_t max_seq_len) {
  ScopedAdaptersDisabled reference(modules);
  return PolicyLogProbs(model, pairs, batch_size, max_seq_len);
}

PreferenceScores ToPreferenceScores(const at::Tensor& policy, const at::Tensor& reference) {
  return PreferenceScores{Column(policy, 0), Column(policy, 1), Column(reference, 0), Column(reference, 1)};
}

absl::StatusOr<PreferenceScores> ScorePreferences(LlamaModel& model, LoraModules& modules,
                                                  const std::vector<PreferencePair>& pairs, int64_t batch_size,
                                                  int64_t max_seq_len) {
  QLORAD_ASSIGN_OR_RETURN(const at::Tensor policy, PolicyLogProbs(model, pairs, batch_size, max_seq_len));
  QLORAD_ASSIGN_OR_RETURN(const at::Tensor reference, ReferenceLogProbs(model, modules, pairs, batch_size, max_seq_len));
  return ToPreferenceScores(policy, reference);
}

DpoMetrics SummarizePreferences(const PreferenceScores& s, double beta) {
  const int64_t n = static_cast<int64_t>(s.policy_chosen.size());
  auto tensor = [](const std::vector<double>& v) { return at::tensor(v, at::TensorOptions().dtype(at::kDouble)); };
  DpoMetrics m;
  m.pairs = n;
  if (n == 0) return m;
  const DpoTerms terms = DpoLoss(tensor(s.policy_chosen), tensor(s.policy_rejected), tensor(s.reference_chosen),
                                 tensor(s.reference_rejected), beta);
  m.loss = terms.losses.mean().item<double>();
  m.chosen_reward = terms.chosen_rewards.mean().item<double>();
  m.rejected_reward = terms.rejected_rewards.mean().item<double>();
  m.margin = m.chosen_reward - m.rejected_reward;
  m.accuracy = terms.chosen_rewards.gt(terms.rejected_rewards).to(at::kDouble).mean().item<double>();
  return m;
}

}  // namespace qlorad
