#include "core/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include <ATen/core/grad_mode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {
namespace {

using Clock = std::chrono::steady_clock;

struct Batch {
  at::Tensor ids, mask, targets, weights;  // [B, T]; weights = 1 on trained target positions
  int64_t tokens = 0;
};

Batch MakeBatch(const std::vector<TrainingExample>& examples, const std::vector<size_t>& rows, int64_t max_len) {
  int64_t len = 0;
  for (size_t r : rows) len = std::max<int64_t>(len, std::min<int64_t>(examples[r].ids.size(), max_len));
  const int64_t b = static_cast<int64_t>(rows.size());
  auto opts = at::TensorOptions().dtype(at::kLong);
  Batch batch{at::zeros({b, len}, opts), at::zeros({b, len}, opts), at::zeros({b, len}, opts),
              at::zeros({b, len}, at::TensorOptions().dtype(at::kFloat)), 0};
  auto ids = batch.ids.accessor<int64_t, 2>();
  auto mask = batch.mask.accessor<int64_t, 2>();
  auto targets = batch.targets.accessor<int64_t, 2>();
  auto weights = batch.weights.accessor<float, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const TrainingExample& ex = examples[rows[i]];
    const int64_t n = static_cast<int64_t>(ex.ids.size()), skip = std::max<int64_t>(0, n - max_len);
    for (int64_t t = 0; t < n - skip; ++t) {
      ids[i][t] = ex.ids[skip + t];
      mask[i][t] = 1;
      if (t + 1 < n - skip) {  // position t predicts token t + 1
        targets[i][t] = ex.ids[skip + t + 1];
        weights[i][t] = ex.trainable[skip + t + 1] ? 1.0f : 0.0f;
      }
    }
    batch.tokens += n - skip;
  }
  return batch;
}

// Mean negative log-likelihood over weighted positions, computed in fp32.
at::Tensor CompletionLoss(const at::Tensor& logits, const Batch& batch) {
  at::Tensor logp = at::log_softmax(logits.to(at::kFloat), -1);
  at::Tensor picked = logp.gather(-1, batch.targets.to(logits.device()).unsqueeze(-1)).squeeze(-1);
  at::Tensor weights = batch.weights.to(logits.device());
  return -(picked * weights).sum() / weights.sum().clamp_min(1.0);
}

// Shuffled, then grouped so each batch holds examples of similar length.
std::vector<std::vector<size_t>> PlanEpoch(const std::vector<TrainingExample>& examples, int64_t batch_size,
                                           std::mt19937_64& rng) {
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t window = static_cast<size_t>(batch_size) * 16;
  for (size_t start = 0; start < order.size(); start += window) {
    auto end = order.begin() + std::min(order.size(), start + window);
    std::stable_sort(order.begin() + start, end,
                     [&](size_t a, size_t b) { return examples[a].ids.size() < examples[b].ids.size(); });
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t start = 0; start < order.size(); start += batch_size)
    batches.emplace_back(order.begin() + start, order.begin() + std::min(order.size(), start + batch_size));
  std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

absl::Status CheckExamples(const std::vector<TrainingExample>& examples, int64_t vocab) {
  if (examples.empty()) return absl::InvalidArgumentError("no training examples");
  for (size_t i = 0; i < examples.size(); ++i) {
    const TrainingExample& ex = examples[i];
    if (ex.ids.size() != ex.trainable.size() || ex.ids.size() < 2)
      return absl::InvalidArgumentError(absl::StrCat("example ", i, ": ids and trainable mask must match (>= 2 tokens)"));
    if (std::find(ex.trainable.begin() + 1, ex.trainable.end(), 1) == ex.trainable.end())
      return absl::InvalidArgumentError(absl::StrCat("example ", i, " has no completion token to train on"));
    for (int64_t id : ex.ids)
      if (id < 0 || id >= vocab) return absl::InvalidArgumentError(absl::StrCat("example ", i, ": token id ", id, " out of vocabulary"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTrainerOptions(const TrainerOptions& o) {
  if (o.epochs <= 0) return absl::InvalidArgumentError("epochs must be positive");
  if (o.batch_size <= 0) return absl::InvalidArgumentError("batch_size must be positive");
  if (o.gradient_accumulation <= 0) return absl::InvalidArgumentError("gradient_accumulation must be positive");
  if (!(o.learning_rate > 0)) return absl::InvalidArgumentError("learning_rate must be positive");
  if (!(o.warmup_ratio >= 0 && o.warmup_ratio < 1)) return absl::InvalidArgumentError("warmup_ratio must be in [0, 1)");
  if (o.schedule != "constant" && o.schedule != "linear" && o.schedule != "cosine")
    return absl::InvalidArgumentError(absl::StrCat("schedule '", o.schedule, "' is not constant, linear or cosine"));
  if (o.max_seq_len < 2) return absl::InvalidArgumentError("max_seq_len must be at least 2");
  return absl::OkStatus();
}

double ScheduledLearningRate(const TrainerOptions& o, int64_t step, int64_t total) {
  const int64_t warmup = static_cast<int64_t>(std::ceil(o.warmup_ratio * total));
  if (step < warmup) return o.learning_rate * (step + 1) / warmup;
  const double progress = total > warmup ? static_cast<double>(step - warmup) / (total - warmup) : 0.0;
  if (o.schedule == "linear") return o.learning_rate * (1.0 - progress);
  if (o.schedule == "cosine") return o.learning_rate * 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.learning_rate;
}

absl::StatusOr<TrainingSummary> TrainLora(LlamaModel& model, LoraModules& modules,
                                          const std::vector<TrainingExample>& examples, const TrainerOptions& options,
                                          const TrainingCallback& on_step) {
  QLORAD_RETURN_IF_ERROR(ValidateTrainerOptions(options));
  QLORAD_RETURN_IF_ERROR(CheckExamples(examples, model->config().vocab_size));
  if (modules.empty()) return absl::FailedPreconditionError("the model has no LoRA modules to train");
  return CatchTorchErrors("training", [&]() -> absl::StatusOr<TrainingSummary> {
    std::vector<at::Tensor> params = LoraParameters(modules);
    torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(options.learning_rate)
                                              .betas({0.9, 0.999})
                                              .eps(1e-8)
                                              .weight_decay(options.weight_decay));
    std::mt19937_64 rng(options.seed);
    const int64_t batches_per_epoch = (static_cast<int64_t>(examples.size()) + options.batch_size - 1) / options.batch_size;
    const int64_t steps_per_epoch = (batches_per_epoch + options.gradient_accumulation - 1) / options.gradient_accumulation;
    const int64_t total_steps = steps_per_epoch * options.epochs;
    TrainingSummary summary;
    const auto start = Clock::now();
    model->train();
    for (int64_t epoch = 0; epoch < options.epochs && !summary.cancelled; ++epoch) {
      auto plan = PlanEpoch(examples, options.batch_size, rng);
      double epoch_loss = 0;
      int64_t epoch_batches = 0;
      for (size_t first = 0; first < plan.size() && !summary.cancelled; first += options.gradient_accumulation) {
        const size_t last = std::min(plan.size(), first + options.gradient_accumulation);
        optimizer.zero_grad();
        double step_loss = 0;
        for (size_t i = first; i < last; ++i) {
          Batch batch = MakeBatch(examples, plan[i], options.max_seq_len);
          at::Tensor logits = model->forward({batch.ids, {}, batch.mask, nullptr});
          at::Tensor loss = CompletionLoss(logits, batch) / static_cast<double>(last - first);
          loss.backward();
          step_loss += loss.item<double>();
          summary.tokens_seen += batch.tokens;
        }
        const double lr = ScheduledLearningRate(options, summary.steps, total_steps);
        for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
        double grad_norm = options.max_grad_norm > 0 ? torch::nn::utils::clip_grad_norm_(params, options.max_grad_norm)
                                                     : torch::nn::utils::clip_grad_norm_(params, 1e30);
        optimizer.step();
        ++summary.steps;
        summary.step_losses.push_back(step_loss);
        epoch_loss += step_loss;
        ++epoch_batches;
        TrainingEvent event;
        event.step = summary.steps;
        event.total_steps = total_steps;
        event.epoch = epoch;
        event.loss = step_loss;
        event.learning_rate = lr;
        event.grad_norm = grad_norm;
        event.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
        event.tokens_per_second = summary.tokens_seen / std::max(event.elapsed_seconds, 1e-9);
        event.eta_seconds = event.elapsed_seconds / summary.steps * (total_steps - summary.steps);
        if (on_step && !on_step(event)) summary.cancelled = true;
      }
      summary.epoch_losses.push_back(epoch_loss / std::max<int64_t>(epoch_batches, 1));
    }
    model->eval();
    summary.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return summary;
  });
}

absl::StatusOr<double> EvaluateLoss(LlamaModel& model, const std::vector<TrainingExample>& examples, int64_t batch_size) {
  QLORAD_RETURN_IF_ERROR(CheckExamples(examples, model->config().vocab_size));
  return CatchTorchErrors("evaluating loss", [&]() -> absl::StatusOr<double> {
    at::NoGradGuard no_grad;
    model->eval();
    double total = 0;
    int64_t count = 0;
    for (size_t start = 0; start < examples.size(); start += batch_size) {
      std::vector<size_t> rows;
      for (size_t i = start; i < std::min(examples.size(), start + batch_size); ++i) rows.push_back(i);
      Batch batch = MakeBatch(examples, rows, 1 << 30);
      total += CompletionLoss(model->forward({batch.ids, {}, batch.mask, nullptr}), batch).item<double>() * rows.size();
      count += static_cast<int64_t>(rows.size());
    }
    return total / count;
  });
}

}  // namespace qlorad
