#include "core/train/adapter_optimizer.h"

#include <memory>

namespace qlorad {

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

}  // namespace qlorad
