// Full-parameter causal-LM pretraining of a (small) Llama-family model on a token
// stream: every weight trains (embeddings, norms, linear layers; tied embeddings stay
// one tensor), next-token loss on every position of randomly drawn windows, AdamW,
// linear warm-up then cosine decay to 10 % over the run's budget, gradient clipping.
// The budget is wall time and/or a step count, whichever ends first. The trained
// weights are written back in Hugging Face names, so the directory loads like any model.
#ifndef QLORAD_CORE_TRAIN_PRETRAIN_H_
#define QLORAD_CORE_TRAIN_PRETRAIN_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/llama.h"

namespace qlorad {

struct PretrainOptions {
  int64_t batch_size = 8;
  int64_t seq_len = 128;      // tokens per window (the loss covers all of them)
  double max_seconds = 240;   // <= 0: no time limit
  int64_t max_steps = 0;      // <= 0: no step limit (one of the two limits is required)
  int64_t warmup_steps = 10;
  double learning_rate = 3e-3;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;
  uint64_t seed = 0;          // window sampling
};

struct PretrainEvent {
  int64_t step = 0;
  double loss = 0, learning_rate = 0, elapsed_seconds = 0, tokens_per_second = 0;
  double progress = 0;  // fraction of the budget used, 0..1
};
// Called after every optimizer step; returning false stops training (the model keeps
// the weights reached so far).
using PretrainCallback = std::function<bool(const PretrainEvent&)>;

struct PretrainSummary {
  int64_t steps = 0, tokens_seen = 0;
  double seconds = 0, first_loss = 0, last_loss = 0;
};

// Gives every weight of `model` its own memory (loaded weights may be read-only file
// mappings) and makes it a trainable leaf; returns them, each once, in module order.
std::vector<at::Tensor> MakeFullyTrainable(LlamaModel& model);

// Trains all of `model`'s weights (MakeFullyTrainable first) on windows of `tokens`.
// INVALID_ARGUMENT for bad options or a stream shorter than one window.
absl::StatusOr<PretrainSummary> Pretrain(LlamaModel& model, const std::vector<int64_t>& tokens,
                                         const PretrainOptions& options, const PretrainCallback& on_step = nullptr);

// exp(mean next-token loss) over up to `max_windows` non-overlapping windows of
// seq_len + 1 tokens spread evenly over `tokens` (no gradients, eval mode).
absl::StatusOr<double> Perplexity(LlamaModel& model, const std::vector<int64_t>& tokens, int64_t seq_len,
                                  int64_t max_windows);

// Writes the model's weights as `dir`/model.safetensors (fp32, Hugging Face tensor
// names; a tied lm_head is not written, as transformers does).
absl::Status WriteModelWeights(LlamaModel& model, const std::string& dir);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_PRETRAIN_H_
