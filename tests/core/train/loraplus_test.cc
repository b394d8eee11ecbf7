// LoRA+ (loraplus_lr_ratio): lora_B learns at ratio × the learning rate, lora_A at the
// rate itself. Checked against AdamW's first step written out here (bias-corrected
// m / sqrt(v) = g / |g|, so each element moves by lr · sign(g) up to eps), not only
// against another qlorad run.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <vector>

#include "core/model/random_model.h"
#include "core/train/lora_model.h"
#include "core/train/trainer.h"
#include "core/train/trainer_options.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

constexpr double kLearningRate = 1e-3;

struct Snapshot {
  std::vector<at::Tensor> before, after;
};

// One optimizer step on a fixed batch from the same start (B random, so that A has a
// gradient too): the adapter tensors before and after.
Snapshot OneStep(const std::string& dir, double ratio) {
  at::manual_seed(1);
  auto modules = std::make_shared<LoraModules>();
  LoraConfig config;
  config.r = 4;
  config.alpha = 8;
  config.dropout = 0;
  LoadOptions load;
  load.linear_factory = MakeLoraLinearFactory(config, load.linear_factory, modules);
  auto loaded = LoadModel(dir, load);
  EXPECT_OK(loaded.status());
  Snapshot s;
  {
    at::NoGradGuard no_grad;
    for (auto& [name, layer] : *modules) layer->lora_B.normal_(0, 0.05);
    for (const at::Tensor& p : LoraParameters(*modules)) s.before.push_back(p.detach().clone());
  }
  std::vector<TrainingExample> examples;
  for (int64_t a = 3; a < 7; ++a) examples.push_back({{1, a, (a * 7) % 40 + 5, 2}, {0, 0, 1, 1}});
  TrainerOptions options;
  options.epochs = 1;
  options.batch_size = 4;
  options.learning_rate = kLearningRate;
  options.schedule = "constant";
  options.warmup_ratio = 0;
  options.max_grad_norm = 0;  // no clipping: the step is AdamW's alone
  options.loraplus_lr_ratio = ratio;
  auto summary = TrainLora(loaded->model, *modules, examples, options, [](const TrainingEvent&) { return true; });
  EXPECT_OK(summary.status());
  EXPECT_EQ(summary->steps, 1);
  for (const at::Tensor& p : LoraParameters(*modules)) s.after.push_back(p.detach().clone());
  return s;
}

// Fraction of elements whose step has magnitude lr (within 1 %); elements whose gradient
// is tiny next to AdamW's eps move less, so the test asks for most, not all.
double FractionMovedBy(const at::Tensor& before, const at::Tensor& after, double lr) {
  at::Tensor step = (after - before).abs().to(at::kDouble);
  return ((step - lr).abs() < 0.01 * lr).to(at::kDouble).mean().item<double>();
}

TEST(LoraPlusTest, BLearnsAtRatioTimesTheRateAndAAtTheRate) {
  const std::string dir = qlorad::testing::MakeTempDir("loraplus_test");
  RandomModelOptions model;
  model.config = MakeConfig("llama", 2, 64, 4, 2, 128, 50, false);
  model.seed = 5;
  ASSERT_OK(WriteRandomModel(dir, model));
  const Snapshot plain = OneStep(dir, 1.0), plus = OneStep(dir, 16.0);
  ASSERT_EQ(plain.after.size(), plus.after.size());
  for (size_t i = 0; i < plus.after.size(); ++i) {
    const bool is_b = i % 2 == 1;
    ASSERT_TRUE(at::equal(plain.before[i], plus.before[i])) << "both runs must start from the same adapter";
    EXPECT_GT(FractionMovedBy(plain.before[i], plain.after[i], kLearningRate), 0.9) << "param " << i;
    EXPECT_GT(FractionMovedBy(plus.before[i], plus.after[i], is_b ? 16 * kLearningRate : kLearningRate), 0.9)
        << "param " << i << (is_b ? " (lora_B)" : " (lora_A)");
    // Same gradients at step 1, so the steps differ by exactly the ratio.
    const at::Tensor step_plain = plain.after[i] - plain.before[i], step_plus = plus.after[i] - plus.before[i];
    const double expected_ratio = is_b ? 16.0 : 1.0;
    EXPECT_TRUE(at::allclose(step_plus, expected_ratio * step_plain, 1e-4, 1e-7)) << "param " << i;
  }
}

TEST(LoraPlusTest, RejectsANonPositiveRatioNamingTheField) {
  TrainerOptions options;
  options.loraplus_lr_ratio = 0;
  EXPECT_THAT(ValidateTrainerOptions(options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loraplus_lr_ratio")));
  options.loraplus_lr_ratio = -2;
  EXPECT_THAT(ValidateTrainerOptions(options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loraplus_lr_ratio")));
  options.loraplus_lr_ratio = 16;
  EXPECT_OK(ValidateTrainerOptions(options));
}

}  // namespace
}  // namespace qlorad
