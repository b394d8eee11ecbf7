// Adapter gradients against an independent reference (central finite differences of the
// loss along a random direction), and gradient checkpointing: the same gradients as a
// plain backward (dropout on, so the recomputation must replay the same masks).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/model/random_model.h"
#include "core/quant/nf4_model.h"
#include "core/train/lora_model.h"
#include "tests/core/train/adapted_model.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using Adapted = qlorad::testing::AdaptedModel;

Adapted Load(double dropout, bool quantize, bool use_dora = false) {
  static const std::string dir = [] {
    std::string d = qlorad::testing::MakeTempDir("gradient_test_model");
    RandomModelOptions options;
    options.config = MakeConfig("llama", 2, 64, 4, 2, 128, 60, false);
    options.seed = 17;
    EXPECT_OK(WriteRandomModel(d, options));
    return d;
  }();
  return qlorad::testing::LoadAdaptedModel(dir, quantize, dropout, use_dora);
}

at::Tensor Loss(Adapted& m, const at::Tensor& tokens) {
  at::Tensor logits = m.loaded.model->forward({tokens, {}, {}, nullptr}).to(at::kFloat);
  at::Tensor inputs = logits.slice(1, 0, -1).reshape({-1, logits.size(-1)});
  at::Tensor targets = tokens.slice(1, 1).reshape({-1});
  return at::nll_loss(at::log_softmax(inputs, -1), targets);
}

std::vector<at::Tensor> Gradients(Adapted& m, const at::Tensor& tokens, bool checkpointing) {
  m.loaded.model->train();
  m.loaded.model->set_gradient_checkpointing(checkpointing);
  std::vector<at::Tensor> params = LoraParameters(*m.modules);
  for (auto& p : params) p.mutable_grad() = at::Tensor();
  at::manual_seed(99);  // the same dropout masks in both runs
  Loss(m, tokens).backward();
  std::vector<at::Tensor> grads;
  for (auto& p : params) grads.push_back(p.grad().clone());
  return grads;
}

at::Tensor Tokens() {
  at::manual_seed(3);
  return at::randint(0, 60, {3, 12}, at::TensorOptions().dtype(at::kLong));
}

// The largest max|a − b| / max|a| over the parameters' gradients; each of `a` must be nonzero.
double MaxRelativeDifference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double max_rel = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_GT(a[i].abs().max().item<double>(), 0) << "param " << i << " got no gradient";
    max_rel = std::max(max_rel, ((a[i] - b[i]).abs().max() / a[i].abs().max()).item<double>());
  }
  return max_rel;
}

TEST(GradientTest, CheckpointingGivesTheSameGradientsWithDropout) {
  for (bool quantize : {false, true}) {
    Adapted plain = Load(0.2, quantize), checkpointed = Load(0.2, quantize);
    const at::Tensor tokens = Tokens();
    EXPECT_LE(MaxRelativeDifference(Gradients(plain, tokens, false), Gradients(checkpointed, tokens, true)), 1e-6)
        << (quantize ? "nf4 base" : "dense base");
  }
}

// Selective recomputation (checkpoint_keep): the recompute takes kept base outputs from the
// forward and skips down_proj's; the gradients must still be a plain backward's.
TEST(GradientTest, CheckpointKeepGivesTheSameGradients) {
  for (bool quantize : {false, true})
    for (bool dora : {false, true})
      for (const char* keep : {"attention", "all"}) {
        Adapted plain = Load(0.2, quantize, dora), checkpointed = Load(0.2, quantize, dora);
        ASSERT_OK(SetCheckpointKeep(*checkpointed.modules, keep));
        const at::Tensor tokens = Tokens();
        EXPECT_LE(MaxRelativeDifference(Gradients(plain, tokens, false), Gradients(checkpointed, tokens, true)), 1e-6)
            << (quantize ? "nf4 base" : "dense base") << (dora ? ", DoRA" : "") << ", keep " << keep;
      }
}

TEST(GradientTest, GradientsMatchCentralFiniteDifferences) {
  Adapted m = Load(0.0, false);
  const at::Tensor tokens = Tokens();
  std::vector<at::Tensor> grads = Gradients(m, tokens, false);
  std::vector<at::Tensor> params = LoraParameters(*m.modules);
  m.loaded.model->eval();
  at::manual_seed(11);
  double directional = 0;
  std::vector<at::Tensor> direction;
  for (size_t i = 0; i < params.size(); ++i) {
    direction.push_back(at::randn_like(params[i]));
    directional += (grads[i] * direction.back()).sum().item<double>();
  }
  auto loss_at = [&](double t) {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].add_(direction[i], t);
    const double loss = Loss(m, tokens).item<double>();
    for (size_t i = 0; i < params.size(); ++i) params[i].sub_(direction[i], t);
    return loss;
  };
  const double eps = 1e-3;  // truncation O(eps^2) vs fp32 round-off O(1e-7 / eps)
  const double numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps);
  EXPECT_NEAR(numeric, directional, 5e-3 * std::abs(directional) + 1e-3)
      << "analytic " << directional << " vs finite differences " << numeric;
  // And per module family (A and B separately), so a bug in one of them cannot hide.
  for (int which : {0, 1}) {
    double analytic = 0;
    std::vector<at::Tensor> masked;
    for (size_t i = 0; i < params.size(); ++i) {
      masked.push_back(static_cast<int>(i % 2) == which ? direction[i] : at::zeros_like(direction[i]));
      analytic += (grads[i] * masked.back()).sum().item<double>();
    }
    std::swap(direction, masked);
    const double fd = (loss_at(eps) - loss_at(-eps)) / (2 * eps);
    std::swap(direction, masked);
    EXPECT_NEAR(fd, analytic, 5e-3 * std::abs(analytic) + 1e-3) << (which == 0 ? "lora_A" : "lora_B");
  }
}

}  // namespace
}  // namespace qlorad
