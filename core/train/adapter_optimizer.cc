#include "core/train/adapter_optimizer.h"

#include <memory>

#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/util/sha256.h"
#include "core/util/status_macros.h"

namespace qlorad {
namespace {

std::vector<AdamMoments> SaveMoments(torch::optim::AdamW& optimizer, const std::vector<at::Tensor>& params) {
  std::vector<AdamMoments> out;
  for (const auto& p : params) {
    AdamMoments m;
    auto it = optimizer.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
    if (it != optimizer.state().end()) {
      auto& state = static_cast<torch::optim::AdamWParamState&>(*it->second);
      m.step = state.step();
      m.exp_avg = state.exp_avg();
      m.exp_avg_sq = state.exp_avg_sq();
    }
    out.push_back(m);
  }
  return out;
}

absl::Status RestoreCheckpoint(const TrainingCheckpoint& c, const std::string& identity, std::vector<at::Tensor>& params,
                               torch::optim::AdamW& optimizer) {
  if (c.run_identity != identity || c.params.size() != params.size())
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", c.path, " belongs to a different run (options, examples or adapter layout changed)",
        " (hint: use a fresh checkpoint directory, or delete it to start over)"));
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!c.params[i].sizes().equals(params[i].sizes()))
      return absl::FailedPreconditionError(absl::StrCat("checkpoint ", c.path, ": param.", i, " has the wrong shape"));
    params[i].copy_(c.params[i]);
    if (c.moments[i].step == 0) continue;
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(c.moments[i].step);
    state->exp_avg(c.moments[i].exp_avg.to(params[i].device()));
    state->exp_avg_sq(c.moments[i].exp_avg_sq.to(params[i].device()));
    optimizer.state()[c10::guts::to_string(params[i].unsafeGetTensorImpl())] = std::move(state);
  }
  return absl::OkStatus();
}

}  // namespace


torch::optim::AdamW MakeAdapterOptimizer(const std::vector<at::Tensor>& params, size_t pair_tensors,
                                         const TrainerOptions& options) {
  std::vector<at::Tensor> a, b;
  for (size_t i = 0; i < params.size(); ++i) (i < pair_tensors && i % 2 == 1 ? b : a).push_back(params[i]);
  auto group_options = [&](double lr) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr).betas({0.9, 0.999}).eps(1e-8).weight_decay(options.weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(a, group_options(options.learning_rate));
  groups.emplace_back(b, group_options(options.learning_rate * options.loraplus_lr_ratio));
  return torch::optim::AdamW(groups, torch::optim::AdamWOptions(options.learning_rate));
}

void SetLearningRate(torch::optim::AdamW& optimizer, double lr, const TrainerOptions& options) {
  auto& groups = optimizer.param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(g == 1 ? lr * options.loraplus_lr_ratio : lr);
}

std::string RunIdentity(const TrainerOptions& o, const std::vector<TrainingExample>& examples,
                        const std::vector<at::Tensor>& params, std::string_view extra) {
  std::string text = absl::StrCat(o.epochs, "|", o.batch_size, "|", o.gradient_accumulation, "|", o.learning_rate, "|",
                                  o.weight_decay, "|", o.schedule, "|", o.warmup_ratio, "|", o.max_grad_norm, "|",
                                  o.max_seq_len, "|", o.seed, "|", o.eval_fraction, "|", o.eval_every_steps, "|",
                                  o.early_stopping_patience, "|", o.early_stopping_min_delta, "|", o.loraplus_lr_ratio, "|",
                                  o.packing ? "packed|" : "");
  absl::StrAppend(&text, absl::string_view(extra.data(), extra.size()));
  for (const auto& p : params) absl::StrAppend(&text, p.numel(), ",");
  for (const auto& ex : examples) {
    for (int64_t id : ex.ids) absl::StrAppend(&text, id, " ");
    absl::StrAppend(&text, ";");
  }
  return Sha256Hex(text);
}

absl::StatusOr<std::optional<TrainerProgress>> RunCheckpoints::Resume(std::vector<std::string>* skipped) {
  if (options_.dir.empty()) return std::nullopt;
  QLORAD_ASSIGN_OR_RETURN(std::optional<TrainingCheckpoint> latest, ReadLatestCheckpoint(options_.dir, skipped));
  if (!latest.has_value()) return std::nullopt;
  QLORAD_RETURN_IF_ERROR(RestoreCheckpoint(*latest, identity_, params_, optimizer_));
  return latest->progress;
}

bool RunCheckpoints::Due(int64_t step, int64_t total_steps, bool early_stopped) const {
  if (options_.dir.empty()) return false;
  const bool periodic = options_.every_steps > 0 && step % options_.every_steps == 0;
  return periodic || step == total_steps || early_stopped;
}

absl::StatusOr<std::string> RunCheckpoints::Save(const TrainerProgress& progress) {
  saved_step_ = progress.step;
  // Every rank has finished step progress.step (the barrier); rank 0 alone writes (write-then-rename).
  QLORAD_RETURN_IF_ERROR(group_.Barrier(absl::StrCat("before the checkpoint of step ", progress.step)));
  if (group_.rank() != 0) return std::string();
  TrainingCheckpoint c{progress, params_, SaveMoments(optimizer_, params_), identity_, ""};
  QLORAD_ASSIGN_OR_RETURN(last_written_, WriteTrainingCheckpoint(options_, c));
  return last_written_;
}

absl::Status RunCheckpoints::SaveUnlessSaved(const TrainerProgress& progress) {
  if (options_.dir.empty() || saved_step_ == progress.step) return absl::OkStatus();
  return Save(progress).status();
}

}  // namespace qlorad
