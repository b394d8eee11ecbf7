#include "core/train/dpo_trainer.h"

#include <algorithm>
#include <random>

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>

#include "absl/strings/str_cat.h"
#include "core/train/adapter_optimizer.h"
#include "core/train/data_parallel.h"
#include "core/train/dpo_loss.h"
#include "core/train/lora_model.h"
#include "core/train/training_batch.h"
#include "core/train/training_progress.h"
#include "core/train/validation.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "core/util/training_random.h"

namespace qlorad {
namespace {

using PairPlan = std::vector<std::vector<size_t>>;  // one epoch's batches of pair indices

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

// Each epoch's batches, length-bucketed on the longer completion of each pair.
EpochPlans PlanPairEpochs(const std::vector<PreferencePair>& pairs, const TrainerOptions& options) {
  std::vector<TrainingExample> lengths(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i)
    lengths[i].ids.resize(std::max(pairs[i].chosen.ids.size(), pairs[i].rejected.ids.size()));
  std::mt19937_64 rng(options.seed);
  EpochPlans plans;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) plans.push_back(PlanEpoch(lengths, options.batch_size, rng));
  return plans;
}

std::vector<double> ToVector(const DpoMetrics& m) {
  return {static_cast<double>(m.pairs), m.loss, m.chosen_reward, m.rejected_reward, m.margin, m.accuracy};
}

DpoMetrics FromVector(const std::vector<double>& v) {
  if (v.size() != 6) return {};
  return {static_cast<int64_t>(v[0]), v[1], v[2], v[3], v[4], v[5]};
}

// Sums of one optimizer step's pairs (this rank's, then every rank's), turned into
// DpoMetrics at the end.
struct StepTotals {
  double loss = 0, chosen = 0, rejected = 0, correct = 0, pairs = 0;
  int64_t global_tokens = 0, rank_tokens = 0;  // tokens of the step's rows: all ranks' / this rank's

  DpoMetrics Metrics() const {
    const double n = std::max(pairs, 1.0);
    return {static_cast<int64_t>(pairs), loss / n, chosen / n, rejected / n, (chosen - rejected) / n, correct / n};
  }
};

// Adds every rank's loss, reward and pair sums (one small all-reduce; nothing with one rank).
absl::Status SumOverRanks(Collective& group, StepTotals& t, int64_t step) {
  if (group.world_size() == 1) return absl::OkStatus();
  at::Tensor sums = at::tensor(std::vector<double>{t.loss, t.chosen, t.rejected, t.correct, t.pairs},
                               at::TensorOptions().dtype(at::kDouble));
  QLORAD_RETURN_IF_ERROR(group.AllReduceSum(sums, absl::StrCat("the DPO metrics of step ", step + 1)));
  const double* v = sums.data_ptr<double>();
  t.loss = v[0], t.chosen = v[1], t.rejected = v[2], t.correct = v[3], t.pairs = v[4];
  return absl::OkStatus();
}

// Forward and backward of this rank's share of one micro-batch of pairs (contiguous
// pairs, ShardRows); the loss is scaled by 1 / step_pairs (the step's pairs on all ranks)
// so the summed gradient is that of the mean over the step's pairs. Dropout draws as for
// the whole micro-batch on one rank (shard-invariant).
void RunPairMicroBatch(LlamaModel& model, const std::vector<TrainingExample>& rows, const at::Tensor& reference,
                       const std::vector<size_t>& pair_ids, int64_t step_pairs, const TrainerOptions& options,
                       const Collective& group, uint64_t dropout_seed, StepTotals& totals) {
  std::vector<size_t> all_rows;
  for (size_t p : pair_ids) all_rows.insert(all_rows.end(), {2 * p, 2 * p + 1});
  const GlobalBatchFacts facts = FactsOf(rows, all_rows, options.max_seq_len);
  totals.global_tokens += facts.tokens;
  int64_t first_pair = 0;
  const std::vector<size_t> mine = ShardRows(pair_ids, group.rank(), group.world_size(), &first_pair);
  if (mine.empty()) return;
  std::vector<size_t> row_ids;
  for (size_t p : mine) row_ids.insert(row_ids.end(), {2 * p, 2 * p + 1});
  const Batch batch = MakeBatch(rows, row_ids, options.max_seq_len);
  ScopedTrainingRandom random(MakeSeededGenerator(model->device(), dropout_seed),
                              {static_cast<int64_t>(all_rows.size()), 2 * first_pair, facts.padded_len});
  const at::Tensor policy = SequenceLogProbs(model, batch).view({-1, 2});
  std::vector<int64_t> index(mine.begin(), mine.end());
  const at::Tensor ref = reference.index_select(0, at::tensor(index)).to(policy.device(), at::kFloat);
  const DpoTerms terms = DpoLoss(policy.select(1, 0), policy.select(1, 1), ref.select(1, 0), ref.select(1, 1),
                                 options.dpo_beta);
  (terms.losses.sum() / static_cast<double>(step_pairs)).backward();
  totals.loss += terms.losses.sum().item<double>();
  totals.chosen += terms.chosen_rewards.sum().item<double>();
  totals.rejected += terms.rejected_rewards.sum().item<double>();
  totals.correct += terms.chosen_rewards.gt(terms.rejected_rewards).sum().item<double>();
  totals.pairs += static_cast<double>(mine.size());
  totals.rank_tokens += batch.tokens;
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

// The validation pairs' metrics under the current adapter; `reference`: their
// ReferenceLogProbs (the base is frozen, so computed once per run).
absl::StatusOr<DpoMetrics> EvaluatePairs(LlamaModel& model, const std::vector<PreferencePair>& pairs,
                                         const at::Tensor& reference, const TrainerOptions& options) {
  QLORAD_ASSIGN_OR_RETURN(const at::Tensor policy, PolicyLogProbs(model, pairs, options.batch_size, options.max_seq_len));
  return SummarizePreferences(ToPreferenceScores(policy, reference), options.dpo_beta);
}

// Everything one run of the loop reads and updates.
struct DpoRun {
  LlamaModel& model;
  const TrainerOptions& options;
  const std::vector<TrainingExample>& rows;  // InterleavePairs(split.train)
  const at::Tensor& reference;               // [train pairs, 2]
  std::vector<at::Tensor>& params;
  torch::optim::AdamW& optimizer;
  TrainerProgress& progress;
  Collective& group;
  int64_t rank_tokens = 0;  // this rank's tokens in this process
};

// One optimizer step over plan[first, last) (gradients and metrics summed over the ranks);
// returns its event (without evaluation).
absl::StatusOr<TrainingEvent> Step(DpoRun& run, const PairPlan& plan, size_t first, size_t last, int64_t epoch,
                                   int64_t total_steps) {
  const TrainerOptions& options = run.options;
  int64_t step_pairs = 0;
  for (size_t i = first; i < last; ++i) step_pairs += static_cast<int64_t>(plan[i].size());
  run.optimizer.zero_grad();
  StepTotals totals;
  for (size_t i = first; i < last; ++i) {
    const uint64_t dropout_seed = (options.seed * 1000003u + static_cast<uint64_t>(run.progress.step)) * 1009u + (i - first);
    RunPairMicroBatch(run.model, run.rows, run.reference, plan[i], step_pairs, options, run.group, dropout_seed, totals);
  }
  QLORAD_RETURN_IF_ERROR(
      AllReduceGradients(run.group, run.params, totals.loss / static_cast<double>(step_pairs), run.progress.step)
          .status());
  QLORAD_RETURN_IF_ERROR(SumOverRanks(run.group, totals, run.progress.step));
  TrainingEvent event;
  event.learning_rate = ScheduledLearningRate(options, run.progress.step, total_steps);
  SetLearningRate(run.optimizer, event.learning_rate, options);
  event.grad_norm =
      torch::nn::utils::clip_grad_norm_(run.params, options.max_grad_norm > 0 ? options.max_grad_norm : 1e30);
  run.optimizer.step();
  event.dpo = true;
  event.dpo_step = totals.Metrics();
  event.loss = event.dpo_step.loss;
  event.epoch = epoch;
  run.progress.tokens_seen += totals.global_tokens;
  run.rank_tokens += totals.rank_tokens;
  run.progress.dpo_steps.push_back(ToVector(event.dpo_step));
  AdvanceProgress(run.progress, event.loss, last, plan.size(), epoch);
  return event;
}

TrainingSummary SummaryOf(const TrainerProgress& p, TrainingSummary summary) {
  summary.steps = p.step;
  summary.step_losses = p.step_losses;
  summary.epoch_losses = p.epoch_losses;
  summary.eval_losses = p.eval_losses;
  summary.eval_steps = p.eval_steps;
  summary.tokens_seen = p.tokens_seen;
  for (const auto& v : p.dpo_steps) summary.dpo_steps.push_back(FromVector(v));
  for (const auto& v : p.dpo_evals) summary.dpo_evals.push_back(FromVector(v));
  summary.dpo_eval_start = FromVector(p.dpo_eval_start);
  return summary;
}

}  // namespace

absl::StatusOr<TrainingSummary> TrainDpo(LlamaModel& model, LoraModules& modules,
                                         const std::vector<PreferencePair>& pairs, const TrainerOptions& options,
                                         const TrainingCallback& on_step, const CheckpointOptions& checkpoints,
                                         Collective* group) {
  QLORAD_RETURN_IF_ERROR(CheckDpoOptions(model, modules, options));
  QLORAD_RETURN_IF_ERROR(CheckPairs(pairs, model->config().vocab_size));
  std::unique_ptr<Collective> single;
  if (group == nullptr) group = (single = MakeSingleProcessCollective()).get();
  QLORAD_ASSIGN_OR_RETURN(const PairSplit split, SplitPairs(pairs, options));
  TrainingSummary summary;
  summary.world_size = group->world_size();
  summary.train_examples = static_cast<int64_t>(split.train.size());
  summary.validation_examples = static_cast<int64_t>(split.validation.size());
  return CatchTorchErrors("DPO training", [&]() -> absl::StatusOr<TrainingSummary> {
    std::vector<at::Tensor> params = LoraParameters(modules);
    torch::optim::AdamW optimizer = MakeAdapterOptimizer(params, 2 * modules.size(), options);
    const std::string identity =
        RunIdentity(options, InterleavePairs(pairs), params, absl::StrCat("dpo|", options.dpo_beta, "|"));
    QLORAD_RETURN_IF_ERROR(BroadcastParameters(*group, params));
    // Every rank scores every train and validation pair with the base (the same numbers everywhere).
    QLORAD_ASSIGN_OR_RETURN(const at::Tensor reference,
                            ReferenceLogProbs(model, modules, split.train, options.batch_size, options.max_seq_len));
    at::Tensor validation_reference;
    if (!split.validation.empty()) {
      QLORAD_ASSIGN_OR_RETURN(validation_reference, ReferenceLogProbs(model, modules, split.validation,
                                                                      options.batch_size, options.max_seq_len));
    }
    RunCheckpoints saved(checkpoints, identity, *group, params, optimizer);
    QLORAD_ASSIGN_OR_RETURN(std::optional<TrainerProgress> resumed, saved.Resume(&summary.skipped_checkpoints));
    TrainerProgress progress = resumed.value_or(TrainerProgress{});
    summary.resumed_from_step = progress.step;
    QLORAD_RETURN_IF_ERROR(CheckRanksAgree(*group, identity, progress.step));
    if (progress.step == 0 && !split.validation.empty()) {
      QLORAD_ASSIGN_OR_RETURN(const DpoMetrics start,
                              EvaluatePairs(model, split.validation, validation_reference, options));
      progress.dpo_eval_start = ToVector(start);
    }
    const std::vector<TrainingExample> rows = InterleavePairs(split.train);
    DpoRun run{model, options, rows, reference, params, optimizer, progress, *group};
    const EpochPlans plans = PlanPairEpochs(split.train, options);
    const int64_t total_steps = TotalSteps(plans, options.gradient_accumulation);
    const ProgressClock clock(progress);
    model->train();
    model->set_gradient_checkpointing(options.gradient_checkpointing);
    QLORAD_RETURN_IF_ERROR(SetCheckpointKeep(modules, options.checkpoint_keep));
    summary.early_stopped =
        ShouldStopEarly(progress.eval_losses, options.early_stopping_patience, options.early_stopping_min_delta);
    for (int64_t epoch = progress.epoch; epoch < options.epochs && !summary.cancelled && !summary.early_stopped; ++epoch) {
      const PairPlan& plan = plans[epoch];
      for (size_t first = static_cast<size_t>(progress.next_batch);
           first < plan.size() && !summary.cancelled && !summary.early_stopped; first += options.gradient_accumulation) {
        const size_t last = std::min(plan.size(), first + options.gradient_accumulation);
        QLORAD_ASSIGN_OR_RETURN(TrainingEvent event, Step(run, plan, first, last, epoch, total_steps));
        clock.Stamp(progress, total_steps, event);
        const bool evaluate = !split.validation.empty() && (options.eval_every_steps > 0
                                                                ? progress.step % options.eval_every_steps == 0
                                                                : progress.next_batch == 0);
        if (evaluate) {
          QLORAD_ASSIGN_OR_RETURN(event.dpo_eval,
                                  EvaluatePairs(model, split.validation, validation_reference, options));
          event.eval_loss = event.dpo_eval.loss;
          progress.eval_losses.push_back(event.eval_loss);
          progress.eval_steps.push_back(progress.step);
          progress.dpo_evals.push_back(ToVector(event.dpo_eval));
          summary.early_stopped =
              ShouldStopEarly(progress.eval_losses, options.early_stopping_patience, options.early_stopping_min_delta);
        }
        if (saved.Due(progress.step, total_steps, summary.early_stopped)) {
          QLORAD_ASSIGN_OR_RETURN(event.checkpoint_path, saved.Save(progress));
        }
        const bool stop_here = on_step && !on_step(event);
        QLORAD_ASSIGN_OR_RETURN(summary.cancelled, AnyRankStops(*group, stop_here, progress.step));
      }
    }
    if (summary.cancelled) QLORAD_RETURN_IF_ERROR(saved.SaveUnlessSaved(progress));
    summary.last_checkpoint = saved.last_written();
    model->eval();
    model->set_gradient_checkpointing(false);
    summary.wall_seconds = clock.Elapsed();
    summary.rank_tokens = run.rank_tokens;
    summary.allreduce_seconds = group->reduce_seconds();
    summary.allreduce_bytes = group->reduced_bytes();
    return SummaryOf(progress, std::move(summary));
  });
}

}  // namespace qlorad
