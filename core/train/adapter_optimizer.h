// The adapters' optimizer, shared by the SFT and DPO loops: AdamW(0.9, 0.999, eps 1e-8)
// over two parameter groups, for LoRA+. Internal to core/train.
#ifndef QLORAD_CORE_TRAIN_ADAPTER_OPTIMIZER_H_
#define QLORAD_CORE_TRAIN_ADAPTER_OPTIMIZER_H_

#include <vector>

#include <torch/optim/adamw.h>

#include "core/train/trainer_options.h"

namespace qlorad {

// Group 0: lora_A tensors (and DoRA magnitudes, as PEFT's LoRA+ groups them) at the
// scheduled rate; group 1: lora_B tensors (odd indices below `pair_tensors`, LoraParameters'
// order) at loraplus_lr_ratio times it (one rate when the ratio is 1). Moments are keyed by
// tensor, so checkpoints do not depend on the grouping.
torch::optim::AdamW MakeAdapterOptimizer(const std::vector<at::Tensor>& params, size_t pair_tensors,
                                         const TrainerOptions& options);

// Sets the scheduled rate `lr` on group 0 and lr · loraplus_lr_ratio on group 1.
void SetLearningRate(torch::optim::AdamW& optimizer, double lr, const TrainerOptions& options);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_ADAPTER_OPTIMIZER_H_
