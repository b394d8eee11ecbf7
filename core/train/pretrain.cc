#include "core/train/pretrain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <utility>

#include <ATen/core/grad_mode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model/safetensors_writer.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {
namespace {

using Clock = std::chrono::steady_clock;

// The model's weights, each once (a tied lm_head shares the embeddings' tensor), with
// the module path libtorch gives them ("embed_tokens", "layers_0.self_attn.q_proj.weight").
std::vector<std::pair<std::string, at::Tensor>> UniqueWeights(LlamaModel& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  std::set<const void*> seen;
  for (const auto& item : model->named_buffers(/*recurse=*/true)) {
    if (!seen.insert(item.value().unsafeGetTensorImpl()).second) continue;
    out.emplace_back(item.key(), item.value());
  }
  return out;
}

// "layers_3.mlp.up_proj.weight" -> "model.layers.3.mlp.up_proj.weight", and so on.
std::string HuggingFaceName(const std::string& path) {
  if (path == "embed_tokens") return "model.embed_tokens.weight";
  if (absl::StartsWith(path, "lm_head.")) return path;
  if (absl::StartsWith(path, "layers_")) {
    const size_t dot = path.find('.');
    return absl::StrCat("model.layers.", path.substr(7, dot - 7), path.substr(dot));
  }
  return "model." + path;  // norm.weight
}

absl::Status CheckOptions(const PretrainOptions& o, size_t tokens) {
  if (o.batch_size <= 0 || o.seq_len <= 0) return absl::InvalidArgumentError("batch_size and seq_len must be positive");
  if (o.max_seconds <= 0 && o.max_steps <= 0)
    return absl::InvalidArgumentError("pretraining needs a budget (hint: --max-seconds S or --max-steps N)");
  if (!(o.learning_rate > 0)) return absl::InvalidArgumentError("the learning rate must be positive");
  if (static_cast<int64_t>(tokens) < o.seq_len + 2)
    return absl::InvalidArgumentError(absl::StrCat("the training stream has ", tokens, " tokens, fewer than one window of ",
                                                   o.seq_len + 1, " (hint: more text or a smaller --seq-len)"));
  return absl::OkStatus();
}

// [B, seq_len + 1] windows at uniformly drawn offsets.
at::Tensor DrawWindows(const std::vector<int64_t>& tokens, const PretrainOptions& o, std::mt19937_64& rng) {
  at::Tensor batch = at::empty({o.batch_size, o.seq_len + 1}, at::TensorOptions().dtype(at::kLong));
  std::uniform_int_distribution<size_t> offset(0, tokens.size() - static_cast<size_t>(o.seq_len) - 1);
  for (int64_t b = 0; b < o.batch_size; ++b)
    std::memcpy(batch[b].data_ptr<int64_t>(), tokens.data() + offset(rng), sizeof(int64_t) * (o.seq_len + 1));
  return batch;
}

// Rows of the lm_head + log-softmax computed at once: the [rows, vocab] logits stay
// small (a 32k vocabulary makes full [B·T, vocab] logits, their log-softmax and their
// gradients the largest tensors of a step, and each a fresh page-faulted allocation).
constexpr int64_t kLossChunk = 512;

// Mean next-token loss of windows [B, T + 1] (fp32). With `backward`, also back-propagates
// it: the lm_head and loss run chunk by chunk, each chunk's backward right after its
// forward, and the accumulated gradient of the hidden states flows through the decoder once.
double WindowLoss(LlamaModel& model, const at::Tensor& windows, bool backward) {
  const int64_t t = windows.size(1) - 1;
  at::Tensor inputs = windows.narrow(1, 0, t).to(model->device());
  at::Tensor targets = windows.narrow(1, 1, t).reshape({-1}).to(model->device());
  at::Tensor hidden = model->Hidden({inputs, {}, {}, nullptr});
  at::Tensor flat = hidden.reshape({-1, hidden.size(-1)});
  at::Tensor detached = backward ? flat.detach().requires_grad_(true) : flat;
  const int64_t rows = flat.size(0);
  double total = 0;
  for (int64_t first = 0; first < rows; first += kLossChunk) {
    const int64_t n = std::min(kLossChunk, rows - first);
    at::Tensor logits = model->lm_head().forward(detached.narrow(0, first, n)).to(at::kFloat);
    at::Tensor loss = at::nll_loss(at::log_softmax(logits, -1), targets.narrow(0, first, n), {}, at::Reduction::Sum);
    if (backward) (loss / static_cast<double>(rows)).backward();
    total += loss.item<double>();
  }
  if (backward) flat.backward(detached.grad());
  return total / rows;
}

// Warm-up to the peak, then cosine to 10 % of it as `progress` goes 0 -> 1.
double LearningRate(const PretrainOptions& o, int64_t step, double progress) {
  const double warm = o.warmup_steps > 0 ? std::min(1.0, (step + 1.0) / o.warmup_steps) : 1.0;
  return o.learning_rate * warm * (0.1 + 0.45 * (1.0 + std::cos(M_PI * std::min(progress, 1.0))));
}

}  // namespace

std::vector<at::Tensor> MakeFullyTrainable(LlamaModel& model) {
  std::vector<at::Tensor> params;
  for (auto& [name, weight] : UniqueWeights(model)) {
    weight.set_data(weight.detach().to(at::kFloat).clone());  // the module's handle sees the new storage
    weight.requires_grad_(true);
    params.push_back(weight);
  }
  return params;
}

absl::StatusOr<PretrainSummary> Pretrain(LlamaModel& model, const std::vector<int64_t>& tokens,
                                         const PretrainOptions& o, const PretrainCallback& on_step) {
  QLORAD_RETURN_IF_ERROR(CheckOptions(o, tokens.size()));
  return CatchTorchErrors("pretraining", [&]() -> absl::StatusOr<PretrainSummary> {
    std::vector<at::Tensor> params;
    for (auto& [name, weight] : UniqueWeights(model))
      if (weight.requires_grad()) params.push_back(weight);
    if (params.empty()) return absl::FailedPreconditionError("no trainable weights (call MakeFullyTrainable first)");
    torch::optim::AdamW optimizer(
        params, torch::optim::AdamWOptions(o.learning_rate).betas({0.9, 0.95}).eps(1e-8).weight_decay(o.weight_decay));
    std::mt19937_64 rng(o.seed);
    PretrainSummary summary;
    const auto start = Clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    auto progress = [&] {
      double p = 0;
      if (o.max_steps > 0) p = std::max(p, static_cast<double>(summary.steps) / o.max_steps);
      if (o.max_seconds > 0) p = std::max(p, elapsed() / o.max_seconds);
      return p;
    };
    model->train();
    for (double p = 0; p < 1.0; p = progress()) {
      const double lr = LearningRate(o, summary.steps, p);
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer.zero_grad();
      const double value = WindowLoss(model, DrawWindows(tokens, o, rng), /*backward=*/true);
      torch::nn::utils::clip_grad_norm_(params, o.max_grad_norm);
      optimizer.step();
      if (summary.steps == 0) summary.first_loss = value;
      summary.last_loss = value;
      ++summary.steps;
      summary.tokens_seen += o.batch_size * o.seq_len;
      summary.seconds = elapsed();
      PretrainEvent event{summary.steps, value, lr, summary.seconds, summary.tokens_seen / std::max(summary.seconds, 1e-9),
                          std::min(progress(), 1.0)};
      if (on_step && !on_step(event)) break;
    }
    model->eval();
    return summary;
  });
}

absl::StatusOr<double> Perplexity(LlamaModel& model, const std::vector<int64_t>& tokens, int64_t seq_len,
                                  int64_t max_windows) {
  const int64_t window = seq_len + 1, available = static_cast<int64_t>(tokens.size()) / window;
  if (seq_len <= 0 || max_windows <= 0 || available == 0)
    return absl::InvalidArgumentError(absl::StrCat("perplexity needs at least one window of ", window, " tokens; the ",
                                                   "stream has ", tokens.size()));
  const int64_t count = std::min(available, max_windows);
  return CatchTorchErrors("perplexity", [&]() -> absl::StatusOr<double> {
    at::NoGradGuard no_grad;
    model->eval();
    double total = 0;
    for (int64_t first = 0; first < count; first += 8) {
      const int64_t rows = std::min<int64_t>(8, count - first);
      at::Tensor batch = at::empty({rows, window}, at::TensorOptions().dtype(at::kLong));
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t slot = (first + r) * available / count;  // spread evenly over the stream
        std::memcpy(batch[r].data_ptr<int64_t>(), tokens.data() + slot * window, sizeof(int64_t) * window);
      }
      total += WindowLoss(model, batch, /*backward=*/false) * rows;
    }
    return std::exp(total / count);
  });
}

absl::Status WriteModelWeights(LlamaModel& model, const std::string& dir) {
  std::vector<TensorSpec> specs;
  std::vector<at::Tensor> tensors;
  for (auto& [path, weight] : UniqueWeights(model)) {
    specs.push_back({HuggingFaceName(path), DType::kF32, weight.sizes().vec()});
    tensors.push_back(weight.detach().to(at::kCPU, at::kFloat).contiguous());
  }
  return WriteSafetensors(dir + "/model.safetensors", specs, {{"format", "pt"}},
                          [&](size_t index, absl::Span<uint8_t> out) {
                            std::memcpy(out.data(), tensors[index].data_ptr(), out.size());
                            return absl::OkStatus();
                          });
}

}  // namespace qlorad
