#include "core/train/trainer.h"

#include "core/train/validation.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <ATen/core/grad_mode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "absl/strings/str_cat.h"
#include "core/train/adapter_optimizer.h"
#include "core/train/data_parallel.h"
#include "core/train/training_batch.h"
#include "core/train/training_progress.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "core/util/training_random.h"

namespace qlorad {
namespace {

// One micro-batch's share of this rank: forward and backward of its rows, the loss
// scaled to the global batch (summed NLL / the global batch's trained positions /
// micro-batches per step).
struct MicroBatchResult {
  double loss = 0;          // this rank's contribution (0 without rows)
  int64_t global_tokens = 0;  // tokens of the whole micro-batch (every rank counts the same)
  int64_t rank_tokens = 0;    // tokens of this rank's shard
};

// Forward and backward of this rank's `batch` under the run's dropout scope (`shard`: its
// place in the global batch); returns the loss scaled to the global batch.
double BackwardShare(LlamaModel& model, const Batch& batch, const GlobalBatchFacts& facts, int64_t micro_batches,
                     uint64_t dropout_seed, const BatchShard& shard) {
  ScopedTrainingRandom random(MakeSeededGenerator(model->device(), dropout_seed), shard);
  at::Tensor loss = SummedCompletionLoss(model, batch) /
                    (static_cast<double>(facts.trained_positions) * static_cast<double>(micro_batches));
  loss.backward();
  return loss.item<double>();
}

// RunMicroBatch with packing: the rows' packs are the unit sharded across ranks, and the
// packs' row layout is the grid dropout draws over; the loss has the same denominator.
MicroBatchResult RunPackedMicroBatch(LlamaModel& model, const std::vector<TrainingExample>& examples,
                                     const std::vector<size_t>& rows, const TrainerOptions& options,
                                     const Collective& group, uint64_t dropout_seed, int64_t micro_batches) {
  const GlobalBatchFacts facts = FactsOf(examples, rows, options.max_seq_len);
  const std::vector<Pack> packs = PackRows(examples, rows, options.max_seq_len);
  std::vector<size_t> pack_index(packs.size());
  std::iota(pack_index.begin(), pack_index.end(), 0);
  int64_t first_pack = 0;
  std::vector<Pack> mine;
  for (size_t p : ShardRows(pack_index, group.rank(), group.world_size(), &first_pack)) mine.push_back(packs[p]);
  std::vector<size_t> my_rows;
  int64_t packed_len = 0;
  for (const Pack& pack : packs) packed_len = std::max(packed_len, FactsOf(examples, pack, options.max_seq_len).tokens);
  for (const Pack& pack : mine) my_rows.insert(my_rows.end(), pack.begin(), pack.end());
  MicroBatchResult result{0.0, facts.tokens, FactsOf(examples, my_rows, options.max_seq_len).tokens};
  if (mine.empty() || facts.trained_positions == 0) return result;
  const Batch batch = MakePackedBatch(examples, mine, options.max_seq_len);
  BatchShard shard{static_cast<int64_t>(packs.size()), first_pack, packed_len};
  if (batch.grid_rows.defined()) shard.token_index = (batch.grid_rows + first_pack) * packed_len + batch.grid_columns;
  result.loss = BackwardShare(model, batch, facts, micro_batches, dropout_seed, shard);
  return result;
}

MicroBatchResult RunMicroBatch(LlamaModel& model, const std::vector<TrainingExample>& examples, const std::vector<size_t>& rows,
                     const TrainerOptions& options, const Collective& group, uint64_t dropout_seed,
                     int64_t micro_batches) {
  if (options.packing) return RunPackedMicroBatch(model, examples, rows, options, group, dropout_seed, micro_batches);
  const GlobalBatchFacts facts = FactsOf(examples, rows, options.max_seq_len);
  int64_t first_row = 0;
  const std::vector<size_t> mine = ShardRows(rows, group.rank(), group.world_size(), &first_row);
  MicroBatchResult result{0.0, facts.tokens, FactsOf(examples, mine, options.max_seq_len).tokens};
  if (mine.empty() || facts.trained_positions == 0) return result;
  result.loss = BackwardShare(model, MakeBatch(examples, mine, options.max_seq_len), facts, micro_batches, dropout_seed,
                              {static_cast<int64_t>(rows.size()), first_row, facts.padded_len});
  return result;
}

// Every epoch's global batches, drawn in order from one rng seeded with options.seed
// (so a resumed run replays the same plan).
EpochPlans PlanEpochs(const std::vector<TrainingExample>& examples, const TrainerOptions& options) {
  std::mt19937_64 rng(options.seed);
  EpochPlans plans;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch)
    plans.push_back(options.packing ? PlanPackedEpoch(examples, options.batch_size, options.max_seq_len, rng)
                                    : PlanEpoch(examples, options.batch_size, rng));
  return plans;
}

absl::Status CheckExamples(const std::vector<TrainingExample>& examples, int64_t vocab) {
  if (examples.empty()) return absl::InvalidArgumentError("no training examples");
  for (size_t i = 0; i < examples.size(); ++i) {
    const TrainingExample& ex = examples[i];
    if (ex.ids.size() != ex.trainable.size() || ex.ids.size() < 2)
      return absl::InvalidArgumentError(absl::StrCat("example ", i, ": ids and trainable mask must match (>= 2 tokens)"));
    if (std::find(ex.trainable.begin() + 1, ex.trainable.end(), 1) == ex.trainable.end())
      return absl::InvalidArgumentError(absl::StrCat("example ", i, " has no completion token to train on"));
    for (int64_t id : ex.ids)
      if (id < 0 || id >= vocab) return absl::InvalidArgumentError(absl::StrCat("example ", i, ": token id ", id, " out of vocabulary"));
  }
  return absl::OkStatus();
}

}  // namespace

double ScheduledLearningRate(const TrainerOptions& o, int64_t step, int64_t total) {
  const int64_t warmup = static_cast<int64_t>(std::ceil(o.warmup_ratio * total));
  if (step < warmup) return o.learning_rate * (step + 1) / warmup;
  const double progress = total > warmup ? static_cast<double>(step - warmup) / (total - warmup) : 0.0;
  if (o.schedule == "linear") return o.learning_rate * (1.0 - progress);
  if (o.schedule == "cosine") return o.learning_rate * 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.learning_rate;
}


absl::StatusOr<TrainingSummary> TrainLora(LlamaModel& model, LoraModules& modules,
                                          const std::vector<TrainingExample>& all_examples, const TrainerOptions& options,
                                          const TrainingCallback& on_step, const CheckpointOptions& checkpoints,
                                          Collective* group) {
  QLORAD_RETURN_IF_ERROR(ValidateTrainerOptions(options));
  std::unique_ptr<Collective> single;
  if (group == nullptr) group = (single = MakeSingleProcessCollective()).get();
  if (const std::string reason = model->config().ContextLimitReason();
      !reason.empty() && options.max_seq_len > model->config().ContextLimit())
    return absl::InvalidArgumentError(absl::StrCat("max_seq_len ", options.max_seq_len, " exceeds the ", reason,
                                                   " (hint: --max-seq-len ", model->config().ContextLimit(), " or less)"));
  QLORAD_RETURN_IF_ERROR(CheckExamples(all_examples, model->config().vocab_size));
  QLORAD_ASSIGN_OR_RETURN(TrainValidationSplit split, SplitValidation(all_examples, options.eval_fraction, options.seed));
  const std::vector<TrainingExample>& examples = split.train;
  if (modules.empty()) return absl::FailedPreconditionError("the model has no LoRA modules to train");
  return CatchTorchErrors("training", [&]() -> absl::StatusOr<TrainingSummary> {
    std::vector<at::Tensor> params = LoraParameters(modules);
    torch::optim::AdamW optimizer = MakeAdapterOptimizer(params, 2 * modules.size(), options);
    const std::string identity = RunIdentity(options, all_examples, params);
    QLORAD_RETURN_IF_ERROR(BroadcastParameters(*group, params));
    TrainingSummary summary;
    summary.world_size = group->world_size();
    summary.train_examples = static_cast<int64_t>(examples.size());
    summary.validation_examples = static_cast<int64_t>(split.validation.size());
    RunCheckpoints saved(checkpoints, identity, *group, params, optimizer);
    QLORAD_ASSIGN_OR_RETURN(std::optional<TrainerProgress> resumed, saved.Resume(&summary.skipped_checkpoints));
    TrainerProgress progress = resumed.value_or(TrainerProgress{});
    summary.resumed_from_step = progress.step;
    QLORAD_RETURN_IF_ERROR(CheckRanksAgree(*group, identity, progress.step));
    const EpochPlans plans = PlanEpochs(examples, options);
    const int64_t total_steps = TotalSteps(plans, options.gradient_accumulation);
    const ProgressClock clock(progress);
    model->train();
    model->set_gradient_checkpointing(options.gradient_checkpointing);
    QLORAD_RETURN_IF_ERROR(SetCheckpointKeep(modules, options.checkpoint_keep));
    summary.early_stopped = ShouldStopEarly(progress.eval_losses, options.early_stopping_patience,
                                            options.early_stopping_min_delta);  // a resumed run that had stopped
    for (int64_t epoch = 0; epoch < options.epochs && !summary.cancelled && !summary.early_stopped; ++epoch) {
      if (epoch < progress.epoch) continue;
      const auto& plan = plans[epoch];
      for (size_t first = static_cast<size_t>(progress.next_batch);
           first < plan.size() && !summary.cancelled && !summary.early_stopped; first += options.gradient_accumulation) {
        const size_t last = std::min(plan.size(), first + options.gradient_accumulation);
        optimizer.zero_grad();
        double local_loss = 0;
        for (size_t i = first; i < last; ++i) {
          const uint64_t dropout_seed = (options.seed * 1000003u + static_cast<uint64_t>(progress.step)) * 1009u + (i - first);
          const MicroBatchResult micro = RunMicroBatch(model, examples, plan[i], options, *group, dropout_seed,
                                                       static_cast<int64_t>(last - first));
          local_loss += micro.loss;
          progress.tokens_seen += micro.global_tokens;
          summary.rank_tokens += micro.rank_tokens;
        }
        QLORAD_ASSIGN_OR_RETURN(const double step_loss, AllReduceGradients(*group, params, local_loss, progress.step));
        const double lr = ScheduledLearningRate(options, progress.step, total_steps);
        SetLearningRate(optimizer, lr, options);
        double grad_norm = torch::nn::utils::clip_grad_norm_(params, options.max_grad_norm > 0 ? options.max_grad_norm : 1e30);
        optimizer.step();
        AdvanceProgress(progress, step_loss, last, plan.size(), epoch);
        TrainingEvent event;
        clock.Stamp(progress, total_steps, event);
        event.epoch = epoch;
        event.loss = step_loss;
        event.learning_rate = lr;
        event.grad_norm = grad_norm;
        const bool evaluate = !split.validation.empty() &&
                              (options.eval_every_steps > 0 ? progress.step % options.eval_every_steps == 0
                                                            : progress.next_batch == 0);  // 0: every epoch end
        if (evaluate) {
          QLORAD_ASSIGN_OR_RETURN(event.eval_loss, EvaluateLoss(model, split.validation, options.batch_size));
          model->train();
          progress.eval_losses.push_back(event.eval_loss);
          progress.eval_steps.push_back(progress.step);
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
    summary.steps = progress.step;
    summary.step_losses = progress.step_losses;
    summary.epoch_losses = progress.epoch_losses;
    summary.eval_losses = progress.eval_losses;
    summary.eval_steps = progress.eval_steps;
    summary.tokens_seen = progress.tokens_seen;
    summary.wall_seconds = clock.Elapsed();
    summary.allreduce_seconds = group->reduce_seconds();
    summary.allreduce_bytes = group->reduced_bytes();
    return summary;
  });
}

absl::StatusOr<double> EvaluateLoss(LlamaModel& model, const std::vector<TrainingExample>& examples, int64_t batch_size) {
  QLORAD_RETURN_IF_ERROR(CheckExamples(examples, model->config().vocab_size));
  return CatchTorchErrors("evaluating loss", [&]() -> absl::StatusOr<double> {
    at::NoGradGuard no_grad;
    model->eval();
    double total = 0;
    int64_t count = 0;
    for (size_t start = 0; start < examples.size(); start += batch_size) {
      std::vector<size_t> rows;
      for (size_t i = start; i < std::min(examples.size(), start + batch_size); ++i) rows.push_back(i);
      Batch batch = MakeBatch(examples, rows, 1 << 30);
      const int64_t trained = FactsOf(examples, rows, 1 << 30).trained_positions;
      total += SummedCompletionLoss(model, batch).item<double>() / std::max<int64_t>(trained, 1) * rows.size();
      count += static_cast<int64_t>(rows.size());
    }
    return total / count;
  });
}

}  // namespace qlorad
