// Training checkpoints: everything needed to continue a LoRA run on the exact same
// trajectory — adapter tensors, AdamW moments and step counts, the loop position
// (epoch + batch index into that epoch's seeded plan), loss accumulators, tokens
// seen and elapsed time. RNG state needs no saving: the data order is replayed from
// the run's seed and dropout draws from a run-owned generator seeded per (seed, step, micro-batch).
//
// Layout: <dir>/checkpoint-<step>/{state.safetensors, trainer_state.json}. A
// checkpoint is written into <dir>/.tmp-checkpoint-<step>/ (each file fsynced) and
// renamed into place, then the directory is fsynced, so a crash leaves either the
// complete checkpoint or none. trainer_state.json records the SHA-256 of
// state.safetensors; ReadLatestCheckpoint() skips (and reports) a checkpoint whose
// files are missing, unparsable or fail the checksum, and falls back to the previous one.
#ifndef QLORAD_CORE_TRAIN_TRAINING_CHECKPOINT_H_
#define QLORAD_CORE_TRAIN_TRAINING_CHECKPOINT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace qlorad {

struct CheckpointOptions {
  std::string dir;          // empty: no checkpoints and no resume
  int64_t every_steps = 0;  // a checkpoint every N optimizer steps (0: only at the end / on cancel)
  int keep = 2;             // newest checkpoints kept; older ones are deleted
};

// Where the loop stands after `step` optimizer steps.
struct TrainerProgress {
  int64_t step = 0;
  int64_t epoch = 0;       // epoch in progress
  int64_t next_batch = 0;  // first batch of that epoch's plan not yet consumed
  int64_t tokens_seen = 0;
  double epoch_loss = 0;   // accumulators of the epoch in progress
  int64_t epoch_batches = 0;
  std::vector<double> step_losses;
  std::vector<double> epoch_losses;
  std::vector<double> eval_losses;  // validation losses so far (early stopping state)
  std::vector<int64_t> eval_steps;
  double elapsed_seconds = 0;
  // DPO runs: the metrics of each step, of the validation slice before training and at
  // each evaluation, each as [pairs, loss, chosen_reward, rejected_reward, margin, accuracy].
  std::vector<std::vector<double>> dpo_steps, dpo_evals;
  std::vector<double> dpo_eval_start;
};

struct AdamMoments {
  int64_t step = 0;  // AdamW's per-parameter step count (0: no state yet)
  at::Tensor exp_avg, exp_avg_sq;
};

struct TrainingCheckpoint {
  TrainerProgress progress;
  std::vector<at::Tensor> params;     // adapter tensors, in LoraParameters() order
  std::vector<AdamMoments> moments;   // one per param
  std::string run_identity;           // caller's digest of options + adapter layout; resume must match
  std::string path;                   // set by Read/Write: the checkpoint directory
};

// Writes checkpoint-<progress.step> atomically under options.dir and prunes old ones.
// Returns the checkpoint directory.
absl::StatusOr<std::string> WriteTrainingCheckpoint(const CheckpointOptions& options, const TrainingCheckpoint& checkpoint);

// The newest complete, checksum-valid checkpoint under `dir` (nullopt when none).
// Checkpoints that fail validation are skipped; their paths and reasons are appended
// to `skipped` when given.
absl::StatusOr<std::optional<TrainingCheckpoint>> ReadLatestCheckpoint(const std::string& dir,
                                                                      std::vector<std::string>* skipped = nullptr);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_TRAINING_CHECKPOINT_H_
