// The trainer's hyperparameters and their checks. Torch-free (the job service and
// the daemon's request mapping use them without the trainer).
#ifndef QLORAD_CORE_TRAIN_TRAINER_OPTIONS_H_
#define QLORAD_CORE_TRAIN_TRAINER_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace qlorad {

struct TrainerOptions {
  int64_t epochs = 3;
  int64_t batch_size = 4;
  int64_t gradient_accumulation = 1;
  double learning_rate = 2e-4;
  double weight_decay = 0.0;
  // LoRA+ (Hayou et al., 2024): lora_B's learning rate = ratio × learning_rate, lora_A's
  // stays learning_rate (the schedule scales both). 1 = plain LoRA; the paper uses ~16.
  double loraplus_lr_ratio = 1.0;
  std::string schedule = "cosine";  // constant | linear | cosine
  double warmup_ratio = 0.03;
  double max_grad_norm = 0.3;       // <= 0 disables clipping
  int64_t max_seq_len = 512;        // longer examples are truncated from the left of the prompt
  uint64_t seed = 0;
  bool gradient_checkpointing = false;  // recompute each decoder layer in backward (less memory, ~1/3 more compute)
  // With gradient checkpointing, which frozen base matmul outputs the recompute does not
  // compute again (LoRA modules only; core/util/checkpoint_base.h):
  //   none       every one is recomputed (least memory);
  //   attention  q/k/v/o_proj's are kept from the forward and down_proj's is not needed
  //              (its value only joins the residual sum): about 4 more hidden-sized
  //              activations per layer and token (less with GQA), 5 of 7 matmuls saved;
  //   all        gate/up_proj's kept too: 2 intermediate-sized more, every matmul saved.
  // DoRA modules keep down_proj's too, twice with dropout. Needs gradient_checkpointing.
  std::string checkpoint_keep = "none";
  // Sample packing: a global batch is batch_size rows of up to max_seq_len tokens, each
  // holding as many whole examples as fit (positions restart per example, attention never
  // crosses examples), instead of batch_size examples padded to the longest. The loss of
  // a given set of examples is the same either way; a batch holds more examples.
  bool packing = false;
  // DPO (method dpo): the KL penalty's strength beta (TRL's and OpenAI's default 0.1);
  // unused by SFT.
  double dpo_beta = 0.1;
  // Validation slice carved from the training examples (validation.h); 0 = none.
  double eval_fraction = 0.0;
  int64_t eval_every_steps = 0;          // 0: at the end of every epoch
  int64_t early_stopping_patience = 0;   // stop after this many evaluations without improvement; 0 = never
  double early_stopping_min_delta = 0.0;
};

// INVALID_ARGUMENT "<field>: <reason>" (the field named as in TrainerOptions) for values
// the trainer cannot use.
absl::Status ValidateTrainerOptions(const TrainerOptions& options);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_TRAINER_OPTIONS_H_
