// Peak-memory and time planner for a fine-tuning run: full fine-tuning, LoRA (base in
// the compute dtype) or QLoRA (NF4 base, blocksize 64, double-quantized scales), with
// a breakdown a user can check line by line, and the common GPUs the run fits on.
//
// The model (all sizes in bytes; N = batch·seq tokens (DPO: 2·batch·seq), L layers, h hidden,
// i intermediate, a heads, d head_dim, kv key/value heads, e = compute element size:
// 2 on CUDA (bf16), 4 on CPU (fp32)):
//  * base weights: linear layers at e bytes/param (QLoRA: 0.5) + embeddings, lm_head
//    and norms at e; quantization constants 1/64 + 4/(64·256) bytes per quantized param.
//  * adapters, gradients, optimizer: trainable params × 4 (fp32 adapters), × 4, and
//    × 8 (AdamW m, v) | × 2 (8-bit AdamW) | × 0 (SGD). Full fine-tuning: gradients at e,
//    optimizer 8 + an fp32 master copy 4 per param.
//  * activations kept for backward, per layer: N·(kActivationH·h + kActivationI·i + 2·kv·d)·e
//    plus the attention scores and probabilities 2·N·a·seq·4 (fp32), plus N·(2·in + r)·4
//    per LoRA-targeted module (dropout mask and output, A·x), and with DoRA N·3·out·4 more
//    (the base term, the scaled update and their sum; estimated, not calibrated) and out
//    trainable magnitudes. With gradient
//    checkpointing only each layer's input (N·h·e) is kept, plus one layer's full set
//    during its recomputation, plus, per checkpoint_keep, the kept base outputs N·out·e of
//    every module it keeps (core/util/checkpoint_base.h).
//  * loss workspace: logits of the positions the loss reads (loss_token_fraction·N)
//    × vocab × 4 × 3 (logits, log-softmax, gradient).
//  * runtime: a constant for the process (CPU: libtorch and the allocator's arenas;
//    CUDA: context + kernels) plus allocator slack (kSlack of the rest).
// The coefficients are calibrated against peak RSS measured on this machine
// (tests/bench/train_memory_bench.cc; RESULTS.md "Memory planner").
#ifndef QLORAD_CORE_TRAIN_MEMORY_PLANNER_H_
#define QLORAD_CORE_TRAIN_MEMORY_PLANNER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/config.h"
#include "core/train/lora_model.h"

namespace qlorad {

struct PlanInput {
  ModelConfig config;
  std::string method = "qlora";     // full | lora | qlora
  LoraConfig lora;                  // rank and targets (LoRA/QLoRA)
  int64_t batch = 1;
  int64_t seq_len = 512;
  // DPO: each of the batch's pairs is two rows (chosen, rejected) in one forward and
  // backward, so N = 2·batch·seq in every activation and loss term. The reference
  // log-probs are computed once before training without gradient (one row batch's
  // forward, below the training peak) and kept as two numbers per pair.
  bool dpo = false;
  bool gradient_checkpointing = true;
  // TrainerOptions::checkpoint_keep: with checkpointing, the LoRA modules' base outputs kept
  // from every layer's forward to its backward (none | attention | all).
  std::string checkpoint_keep = "none";
  std::string optimizer = "adamw";  // adamw | adamw8bit | sgd
  std::string device = "cuda";      // cuda (bf16 compute) | cpu (fp32 compute)
  double loss_token_fraction = 1.0; // share of positions the loss reads (completion-only < 1)
  double tokens_per_second = 0;     // measured throughput for the time estimate (0 = none)
  int64_t train_tokens = 0;         // tokens to train on (epochs × dataset tokens)
};

struct MemoryPlan {
  std::vector<std::pair<std::string, int64_t>> breakdown;  // in the order above
  int64_t total_bytes = 0;
  int64_t trainable_params = 0;
  double hours = 0;                                        // when tokens_per_second > 0
  std::vector<std::pair<std::string, bool>> gpus;          // "24 GB" .. "141 GB" -> fits
};

// Llama-family shapes by name: 1B (Llama-3.2-1B), 3B (Llama-3.2-3B), 7B (Llama-2-7B),
// 8B (Llama-3-8B), 13B (Llama-2-13B), 70B (Llama-2-70B).
absl::StatusOr<ModelConfig> PresetModelConfig(const std::string& name);

absl::StatusOr<MemoryPlan> PlanMemory(const PlanInput& input);

// A human-readable table of the plan.
std::string FormatPlan(const PlanInput& input, const MemoryPlan& plan);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_MEMORY_PLANNER_H_
