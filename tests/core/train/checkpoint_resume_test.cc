// Checkpoints and exact resume: an interrupted-and-resumed QLoRA run (also with DoRA)
// ends with bit-identical adapter tensors to an uninterrupted one (CPU, same thread count);
// corrupt or partial checkpoints are detected and the previous one is used; a
// checkpoint of a different run is refused.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "core/model/random_model.h"
#include "core/quant/nf4_model.h"
#include "core/train/lora_model.h"
#include "core/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

namespace fs = std::filesystem;
using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

struct AdapterRun {
  LoadedModel loaded;
  std::shared_ptr<LoraModules> modules = std::make_shared<LoraModules>();
};

const std::string& ModelDir() {
  static const std::string dir = [] {
    std::string d = qlorad::testing::MakeTempDir("checkpoint_resume_model");
    RandomModelOptions options;
    options.config = MakeConfig("llama", 2, 64, 4, 2, 128, 50, false);
    options.seed = 5;
    EXPECT_OK(WriteRandomModel(d, options));
    return d;
  }();
  return dir;
}

AdapterRun Load(bool dora = false) {
  AdapterRun run;
  at::manual_seed(3);
  LoraConfig config;
  config.r = 4;
  config.alpha = 8;
  config.dropout = 0.1;  // dropout on: resume must reproduce its masks too
  config.use_dora = dora;  // DoRA: the magnitudes are checkpointed and resumed with A and B
  LoadOptions options;
  options.linear_factory = MakeLoraLinearFactory(config, MakeQuantizedLinearFactory(QuantOptions{}), run.modules);
  auto loaded = LoadModel(ModelDir(), options);
  EXPECT_OK(loaded.status());
  run.loaded = std::move(loaded).value();
  return run;
}

std::vector<TrainingExample> Task() {
  std::vector<TrainingExample> examples;
  for (int64_t a = 3; a < 30; ++a) examples.push_back({{1, a, (a * 7) % 40 + 5, 2, a % 5 + 4}, {0, 0, 1, 1, 1}});
  return examples;
}

TrainerOptions Options() {
  TrainerOptions o;
  o.epochs = 3;
  o.batch_size = 4;
  o.gradient_accumulation = 2;
  o.learning_rate = 1e-2;
  o.weight_decay = 0.01;
  o.seed = 9;
  return o;  // 7 batches/epoch -> 4 steps/epoch -> 12 steps
}

std::vector<at::Tensor> Snapshot(const AdapterRun& run) {
  std::vector<at::Tensor> out;
  for (const auto& p : LoraParameters(*run.modules)) out.push_back(p.detach().clone());
  return out;
}

void ExpectBitIdentical(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "adapter tensor " << i << " differs";
}

void ExpectInterruptedAndResumedRunIsBitIdentical(bool dora) {
  AdapterRun reference = Load(dora);
  ASSERT_OK_AND_ASSIGN(TrainingSummary full, TrainLora(reference.loaded.model, *reference.modules, Task(), Options()));
  ASSERT_EQ(full.steps, 12);

  const std::string dir = qlorad::testing::MakeTempDir(dora ? "checkpoint_resume_dora" : "checkpoint_resume_run");
  CheckpointOptions ckpt{dir, 2, 2};
  {  // interrupted after step 5 (mid-epoch, mid-schedule): a checkpoint is written on cancel
    AdapterRun first = Load(dora);
    ASSERT_OK_AND_ASSIGN(TrainingSummary part, TrainLora(first.loaded.model, *first.modules, Task(), Options(),
                                                         [](const TrainingEvent& e) { return e.step < 5; }, ckpt));
    EXPECT_TRUE(part.cancelled);
    EXPECT_EQ(part.steps, 5);
    EXPECT_TRUE(fs::exists(dir + "/checkpoint-5"));
    EXPECT_TRUE(fs::exists(dir + "/checkpoint-4"));
    EXPECT_FALSE(fs::exists(dir + "/checkpoint-2")) << "only the newest 2 are kept";
  }
  AdapterRun resumed = Load(dora);  // a fresh process would start here: new random init, overwritten by the checkpoint
  std::vector<int64_t> steps_seen;
  ASSERT_OK_AND_ASSIGN(TrainingSummary rest, TrainLora(resumed.loaded.model, *resumed.modules, Task(), Options(),
                                                       [&](const TrainingEvent& e) {
                                                         steps_seen.push_back(e.step);
                                                         return true;
                                                       }, ckpt));
  EXPECT_EQ(rest.resumed_from_step, 5);
  EXPECT_EQ(steps_seen.front(), 6);
  EXPECT_EQ(rest.steps, 12);
  EXPECT_EQ(rest.step_losses, full.step_losses);
  EXPECT_EQ(rest.epoch_losses, full.epoch_losses);
  EXPECT_EQ(rest.tokens_seen, full.tokens_seen);
  ExpectBitIdentical(Snapshot(resumed), Snapshot(reference));
  if (dora) {  // the magnitudes trained, and are part of what was compared
    const LoraLinear& layer = resumed.modules->begin()->second;
    ASSERT_TRUE(layer->lora_magnitude.defined());
    EXPECT_FALSE(at::equal(layer->lora_magnitude, layer->DoraWeightNorm().to(layer->lora_magnitude.scalar_type())));
    EXPECT_EQ(Snapshot(resumed).size(), 3 * resumed.modules->size());
  }
}

TEST(CheckpointResumeTest, InterruptedAndResumedRunIsBitIdentical) { ExpectInterruptedAndResumedRunIsBitIdentical(false); }

TEST(CheckpointResumeTest, InterruptedAndResumedDoraRunIsBitIdentical) { ExpectInterruptedAndResumedRunIsBitIdentical(true); }

TEST(CheckpointResumeTest, CorruptNewestCheckpointFallsBackToThePreviousOne) {
  const std::string dir = qlorad::testing::MakeTempDir("checkpoint_corrupt");
  CheckpointOptions ckpt{dir, 2, 3};
  {
    AdapterRun first = Load();
    ASSERT_OK(TrainLora(first.loaded.model, *first.modules, Task(), Options(),
                        [](const TrainingEvent& e) { return e.step < 6; }, ckpt).status());
  }
  // Truncate the newest checkpoint's tensors (a torn write) and leave a stray temp dir.
  fs::resize_file(dir + "/checkpoint-6/state.safetensors", 100);
  fs::create_directories(dir + "/.tmp-checkpoint-7");
  AdapterRun reference = Load();
  ASSERT_OK_AND_ASSIGN(TrainingSummary full, TrainLora(reference.loaded.model, *reference.modules, Task(), Options()));
  AdapterRun resumed = Load();
  ASSERT_OK_AND_ASSIGN(TrainingSummary rest, TrainLora(resumed.loaded.model, *resumed.modules, Task(), Options(), nullptr, ckpt));
  EXPECT_EQ(rest.resumed_from_step, 4);
  ASSERT_EQ(rest.skipped_checkpoints.size(), 1u);
  EXPECT_THAT(rest.skipped_checkpoints[0], HasSubstr("checkpoint-6"));
  EXPECT_THAT(rest.skipped_checkpoints[0], HasSubstr("SHA-256"));
  ExpectBitIdentical(Snapshot(resumed), Snapshot(reference));
  EXPECT_EQ(rest.step_losses, full.step_losses);
}

TEST(CheckpointResumeTest, CheckpointOfADifferentRunIsRefused) {
  const std::string dir = qlorad::testing::MakeTempDir("checkpoint_other_run");
  CheckpointOptions ckpt{dir, 2, 2};
  {
    AdapterRun first = Load();
    ASSERT_OK(TrainLora(first.loaded.model, *first.modules, Task(), Options(),
                        [](const TrainingEvent& e) { return e.step < 3; }, ckpt).status());
  }
  AdapterRun other = Load();
  TrainerOptions changed = Options();
  changed.learning_rate = 5e-3;
  EXPECT_THAT(TrainLora(other.loaded.model, *other.modules, Task(), changed, nullptr, ckpt).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("different run")));
}

}  // namespace
}  // namespace qlorad
