// What a training run is asked to do, apart from where things live: the dataset,
// the base's quantization, the LoRA config and the trainer's hyperparameters.
// One typed struct shared by the daemon's request mapping, the job store (a job's
// spec_json) and the trainer (TrainingRunSpec), with the one JSON mapping of its
// field names. Torch-free.
//
// JSON (a job's stored spec; the keys are a stored format, keep them):
//   {"dataset_id": str, "quantize": "nf4"|"fp4"|"none", "method": "sft"|"dpo",
//    "lora": {"r", "alpha", "dropout", "use_rslora", "use_dora", "init", "loftq_iterations", "target_modules",
//             "rank_pattern", "alpha_pattern"},
//    "trainer": {"epochs", "batch_size", "gradient_accumulation", "learning_rate", "weight_decay",
//                "schedule", "warmup_ratio", "max_grad_norm", "max_seq_len", "seed",
//                "gradient_checkpointing", "eval_fraction", "eval_every_steps",
//                "early_stopping_patience", "early_stopping_min_delta", "loraplus_lr_ratio",
//                "packing", "dpo_beta", "checkpoint_keep"}}
// Absent keys keep the defaults (lora.alpha: DefaultLoraAlpha(lora.r)); other keys are ignored.
#ifndef QLORAD_CORE_TRAIN_TRAINING_OPTIONS_H_
#define QLORAD_CORE_TRAIN_TRAINING_OPTIONS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/adapter/lora_config.h"
#include "core/train/trainer_options.h"
#include "nlohmann/json.hpp"

namespace qlorad {

struct TrainingOptions {
  std::string dataset_id;
  std::string quantize = "nf4";  // nf4 | fp4 (QLoRA) | none (LoRA on a full-precision base)
  // sft: supervised (completion loss) on any dataset format but preference; dpo: preference
  // tuning on a preference dataset (dpo_trainer.h), as OpenAI's fine-tuning `method`.
  std::string method = "sft";
  LoraConfig lora;
  TrainerOptions trainer;

  // INVALID_ARGUMENT naming the field as the API does: "dataset_id: ...", "quantize: ...", "method: ...",
  // "lora.<field>: ..." and "hyperparameters.<field>: ...".
  absl::Status Validate() const;
};

nlohmann::json TrainingOptionsToJson(const TrainingOptions& options);
// Reads the JSON above, then Validate(). A wrong type is INVALID_ARGUMENT naming the key
// ("trainer.learning_rate: wrong type (...)").
absl::StatusOr<TrainingOptions> TrainingOptionsFromJson(const nlohmann::json& json);

// The "lora" and "trainer" objects alone (also what training_run.json records).
nlohmann::json LoraConfigToJson(const LoraConfig& config);
nlohmann::json TrainerOptionsToJson(const TrainerOptions& options);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_TRAINING_OPTIONS_H_
