// The validation slice (carved from the train examples, seeded, disjoint) and early
// stopping: the rule on fixed loss sequences, and a QLoRA run that evaluates every
// step, stops when the validation loss stops improving, reports it in the summary and
// resumes from its checkpoint as a stopped run.
#include <ATen/ATen.h>

#include <set>

#include "core/model/random_model.h"
#include "core/quant/nf4_model.h"
#include "core/train/lora_model.h"
#include "core/train/trainer.h"
#include "core/train/validation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<TrainingExample> Task(int64_t n) {
  std::vector<TrainingExample> examples;
  for (int64_t a = 3; a < 3 + n; ++a) examples.push_back({{1, a % 45 + 3, (a * 7) % 40 + 5, 2, a % 5 + 4}, {0, 0, 1, 1, 1}});
  return examples;
}

TEST(ValidationSplitTest, SeededDisjointAndSized) {
  const auto examples = Task(40);
  ASSERT_OK_AND_ASSIGN(TrainValidationSplit a, SplitValidation(examples, 0.1, 7));
  ASSERT_OK_AND_ASSIGN(TrainValidationSplit b, SplitValidation(examples, 0.1, 7));
  ASSERT_OK_AND_ASSIGN(TrainValidationSplit c, SplitValidation(examples, 0.1, 8));
  EXPECT_EQ(a.validation.size(), 4u);
  EXPECT_EQ(a.train.size(), 36u);
  std::set<std::vector<int64_t>> train_ids;
  for (const auto& e : a.train) train_ids.insert(e.ids);
  for (const auto& e : a.validation) EXPECT_EQ(train_ids.count(e.ids), 0u);
  EXPECT_EQ(a.validation[0].ids, b.validation[0].ids);
  bool differs = false;
  for (size_t i = 0; i < a.validation.size(); ++i) differs |= a.validation[i].ids != c.validation[i].ids;
  EXPECT_TRUE(differs);
  ASSERT_OK_AND_ASSIGN(TrainValidationSplit none, SplitValidation(examples, 0, 7));
  EXPECT_EQ(none.train.size(), 40u);
  EXPECT_TRUE(none.validation.empty());
  EXPECT_THAT(SplitValidation(Task(1), 0.5, 1).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nothing")));
  EXPECT_THAT(SplitValidation(examples, 0.7, 1).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0.5")));
}

TEST(EarlyStoppingTest, StopsOnlyAfterPatienceEvaluationsWithoutImprovement) {
  EXPECT_FALSE(ShouldStopEarly({3, 2, 1}, 1, 0));
  EXPECT_TRUE(ShouldStopEarly({1, 2, 3}, 2, 0));
  EXPECT_FALSE(ShouldStopEarly({1, 2}, 2, 0));          // not enough evaluations yet
  EXPECT_FALSE(ShouldStopEarly({1, 1.5, 0.9}, 2, 0));   // the last one improved
  EXPECT_TRUE(ShouldStopEarly({1, 1.5, 0.95}, 2, 0.1)); // but not by min_delta
  EXPECT_FALSE(ShouldStopEarly({1, 2, 3}, 0, 0));       // patience 0 = never
}

TEST(EarlyStoppingTest, TrainingStopsEvaluatesAndResumesAsStopped) {
  const std::string model_dir = qlorad::testing::MakeTempDir("validation_model");
  RandomModelOptions random;
  random.config = MakeConfig("llama", 2, 64, 4, 2, 128, 50, false);
  random.seed = 5;
  ASSERT_OK(WriteRandomModel(model_dir, random));
  auto load = [&](std::shared_ptr<LoraModules> modules) {
    at::manual_seed(3);
    LoraConfig config;
    config.r = 4;
    LoadOptions options;
    options.linear_factory = MakeLoraLinearFactory(config, MakeQuantizedLinearFactory(QuantOptions{}), modules);
    return LoadModel(model_dir, options);
  };
  TrainerOptions o;
  o.epochs = 5;
  o.batch_size = 4;
  o.learning_rate = 1e-2;
  o.eval_fraction = 0.2;
  o.eval_every_steps = 1;
  o.early_stopping_patience = 2;
  o.early_stopping_min_delta = 100;  // no improvement can count: stop after 3 evaluations
  const auto examples = Task(40);    // 32 train -> 8 steps per epoch
  auto modules = std::make_shared<LoraModules>();
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, load(modules));
  std::vector<double> seen;
  CheckpointOptions checkpoints;
  checkpoints.dir = qlorad::testing::MakeTempDir("validation_ckpt");
  checkpoints.every_steps = 100;
  ASSERT_OK_AND_ASSIGN(TrainingSummary summary, TrainLora(loaded.model, *modules, examples, o, [&](const TrainingEvent& e) {
                         seen.push_back(e.eval_loss);
                         return true;
                       }, checkpoints));
  EXPECT_TRUE(summary.early_stopped);
  EXPECT_EQ(summary.steps, 3);
  EXPECT_EQ(summary.train_examples, 32);
  EXPECT_EQ(summary.validation_examples, 8);
  ASSERT_EQ(summary.eval_losses.size(), 3u);
  EXPECT_EQ(summary.eval_steps, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(seen, summary.eval_losses);
  for (double loss : summary.eval_losses) EXPECT_GT(loss, 0);
  EXPECT_FALSE(summary.last_checkpoint.empty());

  // The same run resumed from its checkpoint is already stopped: no further steps.
  auto again_modules = std::make_shared<LoraModules>();
  ASSERT_OK_AND_ASSIGN(LoadedModel again, load(again_modules));
  ASSERT_OK_AND_ASSIGN(TrainingSummary resumed, TrainLora(again.model, *again_modules, examples, o, nullptr, checkpoints));
  EXPECT_TRUE(resumed.early_stopped);
  EXPECT_EQ(resumed.steps, 3);
  EXPECT_EQ(resumed.resumed_from_step, 3);

  o.early_stopping_patience = 3;
  o.eval_fraction = 0;
  EXPECT_THAT(ValidateTrainerOptions(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("eval_fraction")));
}

}  // namespace
}  // namespace qlorad
