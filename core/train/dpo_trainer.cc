#include "core/train/dpo_trainer.h"

#include <algorithm>
#include <chrono>
#include <random>

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>

#include "absl/strings/str_cat.h"
#include "core/train/adapter_optimizer.h"
#include "core/train/dpo_loss.h"
#include "core/train/lora_model.h"
#include "core/train/training_batch.h"
#include "core/train/validation.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "core/util/training_random.h"

namespace qlorad {
namespace {

using Clock = std::chrono::steady_clock;

struct PairSplit {
  std::vector<PreferencePair> train, validation;
};

absl::StatusOr<PairSplit> SplitPairs(const std::vector<PreferencePair>& pairs, const TrainerOptions& options) {
  QLORAD_ASSIGN_OR_RETURN(const std::vector<bool> is_validation,
                          ValidationMask(pairs.size(), options.eval_fraction, options.seed));
  PairSplit split;
  for (size_t i = 0; i < pairs.size(); ++i) (is_validation[i] ? split.validation : split.train).push_back(pairs[i]);
  return split;
}

// Each epoch's batches of pair indices, length-bucketed on the longer completion of each pair.
std::vector<std::vector<std::vector<size_t>>> PlanPairEpochs(const std::vector<PreferencePair>& pairs,
                                                             const TrainerOptions& options) {
  std::vector<TrainingExample> lengths(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i)
    lengths[i].ids.resize(std::max(pairs[i].chosen.ids.size(), pairs[i].rejected.ids.size()));
  std::mt19937_64 rng(options.seed);
  std::vector<std::vector<std::vector<size_t>>> plans;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) plans.push_back(PlanEpoch(lengths, options.batch_size, rng));
  return plans;
}

// Sums of one optimizer step's pairs, turned into DpoMetrics at the end.
struct StepTotals {
  double loss = 0, chosen = 0, rejected = 0, correct = 0;
  int64_t pairs = 0, tokens = 0;

  DpoMetrics Metrics() const {
    const double n = static_cast<double>(std::max<int64_t>(pairs, 1));
    return {pairs, loss / n, chosen / n, rejected / n, (chosen - rejected) / n, correct / n};
  }
};

// Forward and backward of one micro-batch of pairs; the loss is scaled by 1 / step_pairs
// so the step's gradient is that of the mean over its pairs.
void RunPairMicroBatch(LlamaModel& model, const std::vector<TrainingExample>& rows, const at::Tensor& reference,
                       const std::vector<size_t>& pair_ids, int64_t step_pairs, const TrainerOptions& options,
                       uint64_t dropout_seed, StepTotals& totals) {
  std::vector<size_t> row_ids;
  for (size_t p : pair_ids) row_ids.insert(row_ids.end(), {2 * p, 2 * p + 1});
  const Batch batch = MakeBatch(rows, row_ids, options.max_seq_len);
  ScopedTrainingRandom random(MakeSeededGenerator(model->device(), dropout_seed),
                              {static_cast<int64_t>(row_ids.size()), 0, batch.ids.size(1)});
  const at::Tensor policy = SequenceLogProbs(model, batch).view({-1, 2});
  std::vector<int64_t> index(pair_ids.begin(), pair_ids.end());
  const at::Tensor ref = reference.index_select(0, at::tensor(index)).to(policy.device(), at::kFloat);
  const DpoTerms terms = DpoLoss(policy.select(1, 0), policy.select(1, 1), ref.select(1, 0), ref.select(1, 1),
                                 options.dpo_beta);
  (terms.losses.sum() / static_cast<double>(step_pairs)).backward();
  totals.loss += terms.losses.sum().item<double>();
  totals.chosen += terms.chosen_rewards.sum().item<double>();
  totals.rejected += terms.rejected_rewards.sum().item<double>();
  totals.correct += terms.chosen_rewards.gt(terms.rejected_rewards).sum().item<double>();
  totals.pairs += static_cast<int64_t>(pair_ids.size());
  totals.tokens += batch.tokens;
}

absl::Status CheckDpoOptions(LlamaModel& model, const LoraModules& modules, const TrainerOptions& options) {
  QLORAD_RETURN_IF_ERROR(ValidateTrainerOptions(options));
  if (options.packing)
    return absl::InvalidArgumentError("packing: not supported with method dpo (hint: leave packing off)");
  if (modules.empty()) return absl::FailedPreconditionError("the model has no LoRA modules to train");
  if (const std::string reason = model->config().ContextLimitReason();
      !reason.empty() && options.max_seq_len > model->config().ContextLimit())
    return absl::InvalidArgumentError(absl::StrCat("max_seq_len ", options.max_seq_len, " exceeds the ", reason,
                                                   " (hint: --max-seq-len ", model->config().ContextLimit(), " or less)"));
  return absl::OkStatus();
}

absl::StatusOr<DpoMetrics> EvaluatePairs(LlamaModel& model, LoraModules& modules,
                                         const std::vector<PreferencePair>& pairs, const TrainerOptions& options) {
  QLORAD_ASSIGN_OR_RETURN(PreferenceScores scores,
                          ScorePreferences(model, modules, pairs, options.batch_size, options.max_seq_len));
  return SummarizePreferences(scores, options.dpo_beta);
}

}  // namespace

absl::StatusOr<TrainingSummary> TrainDpo(LlamaModel& model, LoraModules& modules,
                                         const std::vector<PreferencePair>& pairs, const TrainerOptions& options,
                                         const TrainingCallback& on_step) {
  QLORAD_RETURN_IF_ERROR(CheckDpoOptions(model, modules, options));
  QLORAD_RETURN_IF_ERROR(CheckPairs(pairs, model->config().vocab_size));
  QLORAD_ASSIGN_OR_RETURN(PairSplit split, SplitPairs(pairs, options));
  QLORAD_ASSIGN_OR_RETURN(const at::Tensor reference,
                          ReferenceLogProbs(model, modules, split.train, options.batch_size, options.max_seq_len));
  TrainingSummary summary;
  summary.train_examples = static_cast<int64_t>(split.train.size());
  summary.validation_examples = static_cast<int64_t>(split.validation.size());
  if (!split.validation.empty()) {
    QLORAD_ASSIGN_OR_RETURN(summary.dpo_eval_start, EvaluatePairs(model, modules, split.validation, options));
  }
  return CatchTorchErrors("DPO training", [&]() -> absl::StatusOr<TrainingSummary> {
    std::vector<at::Tensor> params = LoraParameters(modules);
    torch::optim::AdamW optimizer = MakeAdapterOptimizer(params, 2 * modules.size(), options);
    const std::vector<TrainingExample> rows = InterleavePairs(split.train);
    const auto plans = PlanPairEpochs(split.train, options);
    int64_t total_steps = 0;
    for (const auto& plan : plans)
      total_steps += (static_cast<int64_t>(plan.size()) + options.gradient_accumulation - 1) / options.gradient_accumulation;
    const auto start = Clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    model->train();
    model->set_gradient_checkpointing(options.gradient_checkpointing);
    double epoch_loss = 0;
    for (int64_t epoch = 0; epoch < options.epochs && !summary.cancelled && !summary.early_stopped; ++epoch) {
      const auto& plan = plans[epoch];
      int64_t epoch_steps = 0;
      epoch_loss = 0;
      for (size_t first = 0; first < plan.size() && !summary.cancelled && !summary.early_stopped;
           first += options.gradient_accumulation) {
        const size_t last = std::min(plan.size(), first + options.gradient_accumulation);
        int64_t step_pairs = 0;
        for (size_t i = first; i < last; ++i) step_pairs += static_cast<int64_t>(plan[i].size());
        optimizer.zero_grad();
        StepTotals totals;
        for (size_t i = first; i < last; ++i) {
          const uint64_t dropout_seed = (options.seed * 1000003u + static_cast<uint64_t>(summary.steps)) * 1009u + (i - first);
          RunPairMicroBatch(model, rows, reference, plan[i], step_pairs, options, dropout_seed, totals);
        }
        const double lr = ScheduledLearningRate(options, summary.steps, total_steps);
        SetLearningRate(optimizer, lr, options);
        const double grad_norm =
            torch::nn::utils::clip_grad_norm_(params, options.max_grad_norm > 0 ? options.max_grad_norm : 1e30);
        optimizer.step();
        ++summary.steps;
        ++epoch_steps;
        summary.tokens_seen += totals.tokens;
        summary.rank_tokens += totals.tokens;
        TrainingEvent event;
        event.dpo = true;
        event.dpo_step = totals.Metrics();
        event.step = summary.steps;
        event.total_steps = total_steps;
        event.epoch = epoch;
        event.loss = event.dpo_step.loss;
        event.learning_rate = lr;
        event.grad_norm = grad_norm;
        event.elapsed_seconds = elapsed();
        event.tokens_per_second = summary.tokens_seen / std::max(event.elapsed_seconds, 1e-9);
        event.eta_seconds = event.elapsed_seconds / summary.steps * (total_steps - summary.steps);
        summary.step_losses.push_back(event.loss);
        summary.dpo_steps.push_back(event.dpo_step);
        epoch_loss += event.loss;
        const bool epoch_end = last == plan.size();
        const bool evaluate = !split.validation.empty() &&
                              (options.eval_every_steps > 0 ? summary.steps % options.eval_every_steps == 0 : epoch_end);
        if (evaluate) {
          QLORAD_ASSIGN_OR_RETURN(event.dpo_eval, EvaluatePairs(model, modules, split.validation, options));
          event.eval_loss = event.dpo_eval.loss;
          summary.eval_losses.push_back(event.eval_loss);
          summary.eval_steps.push_back(summary.steps);
          summary.dpo_evals.push_back(event.dpo_eval);
          summary.early_stopped =
              ShouldStopEarly(summary.eval_losses, options.early_stopping_patience, options.early_stopping_min_delta);
        }
        if (epoch_end) summary.epoch_losses.push_back(epoch_loss / std::max<int64_t>(epoch_steps, 1));
        summary.cancelled = on_step && !on_step(event);
      }
    }
    model->eval();
    model->set_gradient_checkpointing(false);
    summary.wall_seconds = elapsed();
    return summary;
  });
}

}  // namespace qlorad
