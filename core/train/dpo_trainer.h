// The DPO training loop (method "dpo"): LoRA adapters trained on preference pairs
// against the frozen base as the reference model (the adapters disabled), with the
// options of the SFT loop (AdamW, LoRA+, schedule, clipping, gradient accumulation,
// gradient checkpointing, a validation slice with early stopping on the DPO loss).
#ifndef QLORAD_CORE_TRAIN_DPO_TRAINER_H_
#define QLORAD_CORE_TRAIN_DPO_TRAINER_H_

#include <vector>

#include "absl/status/statusor.h"
#include "core/model/llama.h"
#include "core/train/collective.h"
#include "core/train/trainer.h"

namespace qlorad {

// Trains `modules` on `pairs` at options.dpo_beta. A global batch is options.batch_size
// pairs (2 · batch_size rows: chosen and rejected); the loss is the mean over the step's
// pairs of −log σ(beta · ((πc − rc) − (πr − rr))), with π / r the summed completion-token
// log-probs under the adapter / the base. The reference log-probs are computed once
// before the first step (the base is frozen, and reference scoring runs without
// dropout), as TRL's precompute_ref_log_probs.
// Events carry dpo_step (and dpo_eval with eval_loss = the validation DPO loss).
// Deterministic for a fixed seed and thread count, as TrainLora.
// Checkpoints as TrainLora's (`checkpoints`): periodic, on cancellation and at the end; a
// directory holding a checkpoint of the same run (options, pairs, beta, adapter layout)
// is resumed, bit-identical to an uninterrupted run on the CPU with the same threads
// (the DPO metric history travels in the checkpoint; the reference log-probs are
// recomputed from the frozen base).
// Data parallelism as TrainLora's (`group`, world size N): each micro-batch's pairs are split
// into contiguous shards, one per rank; gradients and the step's DPO sums are all-reduced,
// so N ranks train the adapter one rank would (dropout included); every rank computes the
// reference log-probs and the validation metrics on all pairs; rank 0 writes checkpoints.
// Not supported (INVALID_ARGUMENT naming the option): packing.
absl::StatusOr<TrainingSummary> TrainDpo(LlamaModel& model, LoraModules& modules,
                                         const std::vector<PreferencePair>& pairs, const TrainerOptions& options,
                                         const TrainingCallback& on_step = nullptr,
                                         const CheckpointOptions& checkpoints = {}, Collective* group = nullptr);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_DPO_TRAINER_H_
