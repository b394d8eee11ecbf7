// LoRA injection, the training loop and the PEFT adapter format on a small
// generated model. (Adapter logits against an independent reference:
// tests/reference/check_adapter_logits.py.)
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>

#include <filesystem>

#include "core/adapter/peft_config.h"
#include "core/model/random_model.h"
#include "core/quant/nf4_model.h"
#include "core/train/lora_model.h"
#include "core/train/trainer.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

std::string MakeModelDir() {
  std::string dir = qlorad::testing::MakeTempDir("lora_training_test");
  RandomModelOptions options;
  options.config = MakeConfig("llama", 2, 64, 4, 2, 128, 50, false);
  options.seed = 11;
  EXPECT_OK(WriteRandomModel(dir, options));
  return dir;
}

struct Adapted {
  LoadedModel loaded;
  std::shared_ptr<LoraModules> modules = std::make_shared<LoraModules>();
};

absl::StatusOr<Adapted> LoadWithLora(const std::string& dir, const LoraConfig& config, bool quantize) {
  Adapted out;
  at::manual_seed(1);  // lora_A's init: every run trains the same trajectory
  LoadOptions options;
  if (quantize) options.linear_factory = MakeQuantizedLinearFactory(QuantOptions{});
  options.linear_factory = MakeLoraLinearFactory(config, options.linear_factory, out.modules);
  auto loaded = LoadModel(dir, options);
  if (!loaded.ok()) return loaded.status();
  out.loaded = std::move(loaded).value();
  return out;
}

// A fixed mapping to learn: prompt [1, a] -> completion [(a * 7) % 40 + 5, 2].
std::vector<TrainingExample> MappingTask() {
  std::vector<TrainingExample> examples;
  for (int64_t a = 3; a < 43; ++a) examples.push_back({{1, a, (a * 7) % 40 + 5, 2}, {0, 0, 1, 1}});
  return examples;
}

TEST(LoraTrainingTest, EveryTargetedModuleGetsAnAdapterAndOnlyAdaptersTrain) {
  LoraConfig config;
  config.r = 4;
  config.alpha = 8;
  config.target_modules = {"q_proj", "v_proj", "down_proj"};
  config.rank_pattern = {{"down_proj", 2}};
  ASSERT_OK_AND_ASSIGN(Adapted model, LoadWithLora(MakeModelDir(), config, false));
  EXPECT_EQ(model.modules->size(), 6u);  // 3 modules x 2 layers
  EXPECT_EQ(model.modules->at("model.layers.1.mlp.down_proj")->lora_A.size(0), 2);
  for (const auto& p : model.loaded.model->parameters()) EXPECT_TRUE(p.requires_grad());
  EXPECT_EQ(model.loaded.model->parameters().size(), 12u);  // lora_A + lora_B only
}

TEST(LoraTrainingTest, QLoraLossFallsSteadily) {
  LoraConfig config;
  config.r = 8;
  config.alpha = 16;
  config.dropout = 0;
  ASSERT_OK_AND_ASSIGN(Adapted model, LoadWithLora(MakeModelDir(), config, /*quantize=*/true));
  TrainerOptions options;
  options.epochs = 16;
  options.batch_size = 8;
  options.learning_rate = 3e-3;
  options.max_grad_norm = 1.0;
  options.seed = 5;
  auto examples = MappingTask();
  ASSERT_OK_AND_ASSIGN(double before, EvaluateLoss(model.loaded.model, examples, 8));
  std::vector<TrainingEvent> events;
  ASSERT_OK_AND_ASSIGN(TrainingSummary summary, TrainLora(model.loaded.model, *model.modules, examples, options,
                                                          [&](const TrainingEvent& e) { events.push_back(e); return true; }));
  ASSERT_OK_AND_ASSIGN(double after, EvaluateLoss(model.loaded.model, examples, 8));
  EXPECT_EQ(summary.steps, 80);
  ASSERT_EQ(events.size(), 80u);
  EXPECT_EQ(events.back().total_steps, 80);
  EXPECT_LT(after, 0.3 * before) << "before " << before << " after " << after;
  ASSERT_EQ(summary.epoch_losses.size(), 16u);
  for (size_t i = 2; i < summary.epoch_losses.size(); ++i) EXPECT_LT(summary.epoch_losses[i], summary.epoch_losses[i - 2]);
}

TEST(LoraTrainingTest, CancellationStopsAtTheNextStep) {
  LoraConfig config;
  ASSERT_OK_AND_ASSIGN(Adapted model, LoadWithLora(MakeModelDir(), config, false));
  TrainerOptions options;
  options.batch_size = 4;
  ASSERT_OK_AND_ASSIGN(TrainingSummary summary, TrainLora(model.loaded.model, *model.modules, MappingTask(), options,
                                                          [](const TrainingEvent& e) { return e.step < 3; }));
  EXPECT_TRUE(summary.cancelled);
  EXPECT_EQ(summary.steps, 3);
}

TEST(LoraTrainingTest, PeftRoundTripReproducesLogits) {
  std::string dir = MakeModelDir();
  LoraConfig config;
  config.r = 4;
  config.dropout = 0;
  ASSERT_OK_AND_ASSIGN(Adapted trained, LoadWithLora(dir, config, false));
  {
    at::NoGradGuard no_grad;
    for (auto& [name, layer] : *trained.modules) layer->lora_B.normal_(0, 0.1);
  }
  std::string adapter = qlorad::testing::MakeTempDir("adapter");
  ASSERT_OK(SavePeftAdapter(adapter, config, *trained.modules, dir, {{"qlorad_base_fingerprint", trained.loaded.fingerprint}}));
  ASSERT_OK_AND_ASSIGN(LoraConfig read, ReadPeftConfig(adapter));
  EXPECT_EQ(read.r, 4);
  EXPECT_EQ(read.target_modules, config.target_modules);
  ASSERT_OK_AND_ASSIGN(Adapted reloaded, LoadWithLora(dir, read, false));
  ASSERT_OK(LoadPeftWeights(adapter, *reloaded.modules));
  at::NoGradGuard no_grad;
  at::Tensor tokens = at::randint(0, 50, {1, 9}, at::TensorOptions().dtype(at::kLong));
  at::Tensor a = trained.loaded.model->forward({tokens, {}, {}, nullptr});
  at::Tensor b = reloaded.loaded.model->forward({tokens, {}, {}, nullptr});
  EXPECT_TRUE(at::equal(a, b));
  ASSERT_OK_AND_ASSIGN(auto metadata, ReadPeftMetadata(adapter));
  EXPECT_EQ(metadata["qlorad_base_fingerprint"], trained.loaded.fingerprint);
}

TEST(LoraTrainingTest, IncompatibleAdaptersAreRefusedWithTheTensorNamed) {
  std::string dir = MakeModelDir();
  LoraConfig config;
  config.r = 4;
  ASSERT_OK_AND_ASSIGN(Adapted model, LoadWithLora(dir, config, false));
  std::string adapter = qlorad::testing::MakeTempDir("adapter");
  ASSERT_OK(SavePeftAdapter(adapter, config, *model.modules, dir, {}));
  // Same adapter, but the base gets rank 8 modules: shapes differ.
  LoraConfig wider = config;
  wider.r = 8;
  ASSERT_OK_AND_ASSIGN(Adapted other, LoadWithLora(dir, wider, false));
  EXPECT_THAT(LoadPeftWeights(adapter, *other.modules),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("lora_A.weight"), HasSubstr("hint"))));
  // Only q_proj targeted: the adapter's k_proj tensors have nowhere to go.
  LoraConfig narrow = config;
  narrow.target_modules = {"q_proj"};
  ASSERT_OK_AND_ASSIGN(Adapted partial, LoadWithLora(dir, narrow, false));
  EXPECT_THAT(LoadPeftWeights(adapter, *partial.modules),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not exist in base model")));
  // Unsupported PEFT features.
  ASSERT_OK(WriteFileAtomically(adapter + "/adapter_config.json",
                                R"({"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],"modules_to_save":["lm_head"]})"));
  EXPECT_THAT(ReadPeftConfig(adapter), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("modules_to_save")));
}

}  // namespace
}  // namespace qlorad
