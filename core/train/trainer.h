// The LoRA/QLoRA training loop: completion-only loss over tokenized examples,
// length-bucketed padded batches or packed rows, gradient accumulation, AdamW, warm-up +
// constant/linear/cosine schedule, gradient-norm clipping, progress events and
// cancellation. Only the adapter tensors receive gradients and optimizer state.
#ifndef QLORAD_CORE_TRAIN_TRAINER_H_
#define QLORAD_CORE_TRAIN_TRAINER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/llama.h"
#include "core/train/collective.h"
#include "core/train/lora_model.h"
#include "core/train/trainer_options.h"
#include "core/train/training_checkpoint.h"

namespace qlorad {

struct TrainingExample {
  std::vector<int64_t> ids;
  std::vector<uint8_t> trainable;  // 1 = completion token: its prediction is trained
};

// One preference example for DPO: the same prompt rendered with the preferred (chosen)
// and the dispreferred (rejected) completion.
struct PreferencePair {
  TrainingExample chosen, rejected;
};

// DPO's metrics over a set of pairs, means as TRL logs them (rewards/chosen,
// rewards/rejected, rewards/margins, rewards/accuracies); rewards are
// beta · (log π(y|x) − log π_ref(y|x)) summed over completion tokens.
struct DpoMetrics {
  int64_t pairs = 0;
  double loss = 0, chosen_reward = 0, rejected_reward = 0, margin = 0;
  double accuracy = 0;  // fraction of pairs whose chosen reward exceeds the rejected one
};

struct TrainingEvent {
  int64_t step = 0, total_steps = 0, epoch = 0;
  double loss = 0, learning_rate = 0, grad_norm = 0;
  double tokens_per_second = 0, elapsed_seconds = 0, eta_seconds = 0;
  std::string checkpoint_path;  // non-empty when a checkpoint was written after this step
  double eval_loss = -1;        // validation loss computed after this step; -1 = none this step
  bool dpo = false;             // a DPO run: loss is the DPO loss and the two below are set
  DpoMetrics dpo_step;          // this step's pairs
  DpoMetrics dpo_eval;          // the validation pairs, when eval_loss >= 0
};
// Called after every optimizer step; returning false cancels training.
using TrainingCallback = std::function<bool(const TrainingEvent&)>;

struct TrainingSummary {
  std::vector<double> step_losses;
  std::vector<double> epoch_losses;  // mean loss per epoch
  int64_t steps = 0;
  int64_t tokens_seen = 0;
  double wall_seconds = 0;
  bool cancelled = false;
  int64_t resumed_from_step = 0;   // 0: started fresh
  std::string last_checkpoint;     // newest checkpoint written ("" without checkpointing)
  std::vector<std::string> skipped_checkpoints;  // invalid checkpoints passed over on resume
  std::vector<double> eval_losses;  // validation losses in order (eval_fraction > 0)
  std::vector<int64_t> eval_steps;  // the step after which each was computed
  bool early_stopped = false;
  int64_t train_examples = 0, validation_examples = 0;
  // Data parallelism: the group's size, and this rank's time and bytes in all-reduce.
  int world_size = 1;
  double allreduce_seconds = 0;
  int64_t allreduce_bytes = 0;
  int64_t rank_tokens = 0;  // tokens this rank trained on in this process (not before a resume)
  // DPO runs: each step's metrics, and the validation pairs' before training and at each
  // evaluation (in eval_steps' order).
  std::vector<DpoMetrics> dpo_steps;
  DpoMetrics dpo_eval_start;
  std::vector<DpoMetrics> dpo_evals;
};

// The learning rate at optimizer step `step` (0-based) of `total`.
double ScheduledLearningRate(const TrainerOptions& options, int64_t step, int64_t total);

// Trains the adapters in `modules` (already part of `model`). `examples` must
// each have at least one trainable token. Deterministic for a fixed seed and thread count
// (the adapters' initial values come from the loader: seed at::manual_seed before loading).
// Dropout draws from a generator of the run's own, seeded from (seed, step, micro-batch)
// (core/util/training_random.h), never from the process-wide one.
//
// Data parallelism (`group` with world size N > 1; null = one process): every rank passes
// the same examples and options; each global batch of options.batch_size rows (examples,
// or packed rows with options.packing) is split into contiguous shards, one per rank; the loss is the global batch's summed
// completion-token NLL over its trained-position count, so N ranks compute the gradient of
// one rank training the whole batch (dropout masks included); gradients are summed in one
// flat all-reduce per optimizer step and every rank steps an identical AdamW. Rank 0's
// initial adapter is broadcast; rank 0 alone writes checkpoints (after a barrier), and
// every rank resumes from the checkpoint directory (shared by all ranks). Validation runs
// the whole validation slice on every rank. A failed collective fails the run on every
// rank (UNAVAILABLE / DEADLINE_EXCEEDED naming the rank and step).
//
// With checkpoints.dir set: a checkpoint every checkpoints.every_steps steps, on
// cancellation and at the end; and if the directory already holds a valid checkpoint of
// the same run (same options, examples and adapter layout — else FAILED_PRECONDITION),
// training resumes from it. A resumed run ends bit-identical to an uninterrupted one on
// the CPU with the same thread count (tests/core/train/checkpoint_resume_test.cc).
absl::StatusOr<TrainingSummary> TrainLora(LlamaModel& model, LoraModules& modules,
                                          const std::vector<TrainingExample>& examples, const TrainerOptions& options,
                                          const TrainingCallback& on_step = nullptr,
                                          const CheckpointOptions& checkpoints = {}, Collective* group = nullptr);

// Mean completion-token loss of `examples` without training (dropout off).
absl::StatusOr<double> EvaluateLoss(LlamaModel& model, const std::vector<TrainingExample>& examples, int64_t batch_size);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_TRAINER_H_
