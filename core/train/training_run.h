// One complete training run, as the daemon's workers and `qlorad-tool train` perform it:
// read the dataset's TRAIN split, render it through the prompt format, load the base
// (4-bit for QLoRA) with fresh adapters, train (method sft: TrainLora, resuming from
// checkpoints when the checkpoint directory holds some; method dpo: TrainDpo on the
// preference pairs, resumed and data-parallel likewise, with a "dpo" object in the record), then write the PEFT adapter directory and
// training_run.json (UTC start/end, base path + fingerprint, dataset id + checksums,
// every hyperparameter, seed, threads, versions, losses, tokens seen, peak RSS, wall time).
#ifndef QLORAD_CORE_TRAIN_TRAINING_RUN_H_
#define QLORAD_CORE_TRAIN_TRAINING_RUN_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "core/train/lora_model.h"
#include "core/train/trainer.h"
#include "core/train/training_options.h"
#include "nlohmann/json.hpp"

namespace qlorad {

struct TrainingRunSpec {
  std::string model_dir;
  std::string dataset_root;
  std::string output_dir;        // the PEFT adapter directory to write
  std::string prompt_format;     // "" = detect from the tokenizer
  std::string device = "auto";
  TrainingOptions options;       // dataset id, quantize, LoRA config, hyperparameters
  CheckpointOptions checkpoints;  // dir "" = none
  std::map<std::string, std::string> adapter_metadata;  // extra safetensors metadata
};

struct TrainingRunResult {
  TrainingSummary summary;
  nlohmann::ordered_json record;  // what training_run.json holds
  std::string base_fingerprint;
  int64_t examples = 0;
};

// A cancelled run (callback returned false) writes no adapter and returns the summary
// with cancelled = true (its last checkpoint stays for a resume).
//
// With `group` (data parallelism, trainer.h): every rank calls RunTraining with the same
// spec apart from `device`; rank 0 alone writes the adapter and training_run.json, whose
// "distributed" object records the world size, backend, each rank's tokens/s and the
// all-reduce time and bytes per step. Other ranks return the same summary and record.
absl::StatusOr<TrainingRunResult> RunTraining(const TrainingRunSpec& spec, const TrainingCallback& on_step = nullptr,
                                              Collective* group = nullptr);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_TRAINING_RUN_H_
