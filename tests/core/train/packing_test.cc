// Sample packing (TrainerOptions::packing). The reference is the unpacked layout: one
// example per padded row, which the rest of the trainer's tests check against finite
// differences and float64 (gradient_test, reference_model_logits). Packing must give the
// same loss and gradients for the same examples, and the same run when the plans hold the
// same examples per step.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <random>
#include <set>
#include <vector>

#include "core/model/random_model.h"
#include "core/quant/nf4_model.h"
#include "core/train/lora_model.h"
#include "tests/core/train/adapted_model.h"
#include "core/train/trainer.h"
#include "core/train/training_batch.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int64_t kVocab = 60;

// Examples of `length` tokens (a random length in [3, max_length] when length == 0) whose
// last 1-3 tokens are the completion.
std::vector<TrainingExample> RandomExamples(int count, int64_t length, int64_t max_length, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TrainingExample> out;
  for (int i = 0; i < count; ++i) {
    const int64_t n = length > 0 ? length : 3 + static_cast<int64_t>(rng() % (max_length - 2));
    const int64_t completion = 1 + static_cast<int64_t>(rng() % 3);
    TrainingExample ex;
    for (int64_t t = 0; t < n; ++t) {
      ex.ids.push_back(static_cast<int64_t>(rng() % kVocab));
      ex.trainable.push_back(t >= n - completion ? 1 : 0);
    }
    out.push_back(std::move(ex));
  }
  return out;
}

std::string WriteModel(const std::string& type, int64_t heads, int64_t kv_heads) {
  const std::string dir = qlorad::testing::MakeTempDir("packing_test_" + type);
  RandomModelOptions options;
  options.config = MakeConfig(type, 2, 64, heads, kv_heads, 128, kVocab, false);
  if (type == "llama") {  // Llama-3 rope scaling: positions enter through cos/sin tables
    options.config.rope_scaling.type = RopeScalingType::kLlama3;
    options.config.rope_scaling.factor = 8;
    options.config.rope_scaling.low_freq_factor = 1;
    options.config.rope_scaling.high_freq_factor = 4;
    options.config.rope_scaling.original_max_position_embeddings = 16;
  }
  options.seed = 11;
  EXPECT_OK(WriteRandomModel(dir, options));
  return dir;
}

using Adapted = qlorad::testing::AdaptedModel;

Adapted Load(const std::string& dir, bool quantize, double dropout = 0) {
  return qlorad::testing::LoadAdaptedModel(dir, quantize, dropout);
}

struct LossAndGradients {
  double loss = 0;
  std::vector<at::Tensor> gradients;
};

// chunk_rows > 0: the vocabulary loss in chunks of that many rows (chunked_loss.h).
LossAndGradients Backward(Adapted& m, const Batch& batch, bool checkpointing, int64_t chunk_rows = 0) {
  m.loaded.model->train();
  m.loaded.model->set_gradient_checkpointing(checkpointing);
  std::vector<at::Tensor> params = LoraParameters(*m.modules);
  for (auto& p : params) p.mutable_grad() = at::Tensor();
  at::Tensor loss = SummedCompletionLoss(m.loaded.model, batch, chunk_rows);
  loss.backward();
  LossAndGradients out{loss.item<double>(), {}};
  for (auto& p : params) out.gradients.push_back(p.grad().clone());
  return out;
}

double MaxRelativeDifference(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

TEST(PackingTest, PacksHoldWholeExamplesWithinTheLengthAndEachExampleOnce) {
  const std::vector<TrainingExample> examples = RandomExamples(200, 0, 40, 1);
  std::mt19937_64 rng(3);
  const auto plan = PlanPackedEpoch(examples, 4, 64, rng);
  std::multiset<size_t> seen;
  for (const auto& batch : plan) {
    const std::vector<Pack> packs = PackRows(examples, batch, 64);
    ASSERT_LE(packs.size(), 4u);
    int64_t tokens = 0;
    for (const Pack& pack : packs) {
      int64_t used = 0;
      for (size_t r : pack) used += static_cast<int64_t>(examples[r].ids.size());
      EXPECT_LE(used, 64);
      tokens += used;
    }
    EXPECT_EQ(tokens, FactsOf(examples, batch, 64).tokens);
    seen.insert(batch.begin(), batch.end());
  }
  ASSERT_EQ(seen.size(), examples.size());
  for (size_t i = 0; i < examples.size(); ++i) EXPECT_EQ(seen.count(i), 1u) << "example " << i;
  // Mean 21.5 tokens in rows of 64: most batches hold well over batch_size examples.
  EXPECT_LT(plan.size(), examples.size() / 6);  // unpacked: 50 batches
}

at::Tensor Bools(std::vector<int64_t> values) { return at::tensor(values, at::kLong).to(at::kBool); }

TEST(PackingTest, PackedBatchLayout) {
  std::vector<TrainingExample> examples = {{{5, 6, 7}, {0, 1, 1}}, {{8, 9}, {0, 1}}, {{10, 11, 12, 13}, {0, 0, 1, 1}}};
  const Batch batch = MakePackedBatch(examples, {{0, 1}, {2}}, 8);
  // Padding-free: the three examples end to end in one row, positions restarting.
  ASSERT_EQ(batch.ids.sizes(), (at::IntArrayRef{1, 9}));
  EXPECT_TRUE(at::equal(batch.ids[0], at::tensor({5, 6, 7, 8, 9, 10, 11, 12, 13}, at::kLong)));
  EXPECT_TRUE(at::equal(batch.positions[0], at::tensor({0, 1, 2, 0, 1, 0, 1, 2, 3}, at::kLong)));
  // Attention runs per example: here one group (similar lengths), shortest first; each
  // example's tokens gathered from 0 (padding slots: any index) and scattered back.
  ASSERT_EQ(batch.segments.groups.size(), 1u);
  const PackedSegments::Group& group = batch.segments.groups[0];
  ASSERT_EQ(group.gather.sizes(), (at::IntArrayRef{3, 4}));
  EXPECT_TRUE(at::equal(group.gather[0].slice(0, 0, 2), at::tensor({3, 4}, at::kLong)));
  EXPECT_TRUE(at::equal(group.gather[1].slice(0, 0, 3), at::tensor({0, 1, 2}, at::kLong)));
  EXPECT_TRUE(at::equal(group.gather[2], at::tensor({5, 6, 7, 8}, at::kLong)));
  EXPECT_TRUE(at::equal(batch.segments.scatter, at::tensor({4, 5, 6, 0, 1, 8, 9, 10, 11}, at::kLong)));
  // The 2-token example's second token sees its first and itself; its padding slots see
  // the real tokens and themselves (never an all-masked row; their outputs are dropped).
  EXPECT_TRUE(at::equal(group.attend[0][0][1], Bools({1, 1, 0, 0})));
  EXPECT_TRUE(at::equal(group.attend[0][0][3], Bools({1, 1, 0, 1})));
  EXPECT_TRUE(at::equal(group.attend[2][0][3], Bools({1, 1, 1, 1})));
  // Dropout's grid: the packs as rows.
  EXPECT_TRUE(at::equal(batch.grid_rows, at::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1}, at::kLong)));
  EXPECT_TRUE(at::equal(batch.grid_columns, at::tensor({0, 1, 2, 3, 4, 0, 1, 2, 3}, at::kLong)));
  // The last token of an example predicts nothing (no target across examples).
  EXPECT_EQ(batch.weights[0][2].item<float>(), 0.0f);
  EXPECT_EQ(batch.weights[0][1].item<float>(), 1.0f);
  EXPECT_EQ(batch.targets[0][1].item<int64_t>(), 7);
  EXPECT_EQ(batch.tokens, 9);
}

// Outside training and autograd (validation, scoring), the packed forward must not take
// the plain-causal attention kernel: its final hidden states equal the unpacked ones.
TEST(PackingTest, PackedForwardOutsideTrainingEqualsUnpacked) {
  const std::vector<TrainingExample> examples = RandomExamples(6, 0, 40, 5);
  const std::vector<size_t> rows = {0, 1, 2, 3, 4, 5};
  const Batch padded = MakeBatch(examples, rows, 64), packed = MakePackedBatch(examples, {{0, 1, 2}, {3, 4, 5}}, 64);
  ASSERT_GE(packed.segments.groups.size(), 2u) << "the test needs lengths far apart";
  Adapted m = Load(WriteModel("llama", 4, 2), /*quantize=*/false);
  m.loaded.model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor unpacked_hidden = m.loaded.model->Hidden({padded.ids, {}, padded.mask, nullptr});
  ForwardInput input{packed.ids, packed.positions, packed.mask, nullptr};
  input.segments = packed.segments;
  const at::Tensor packed_hidden = m.loaded.model->Hidden(input);
  const at::Tensor mask = padded.mask.flatten().nonzero().squeeze(1);
  const at::Tensor expected = unpacked_hidden.flatten(0, 1).index_select(0, mask);
  EXPECT_LT(MaxRelativeDifference(packed_hidden[0], expected), 1e-5);
}

// The same rows packed (padding-free) and padded: summed loss and every adapter gradient agree, for
// Llama (GQA, Llama-3 rope scaling) and Qwen2 (q/k/v biases), dense and NF4 bases, with
// and without gradient checkpointing. (RoPE scores depend only on position differences,
// so this would also hold with positions continuing across examples, up to rounding;
// PackedBatchLayout checks the restart.)
TEST(PackingTest, PackedRowsGiveTheUnpackedLossAndGradients) {
  const std::vector<TrainingExample> examples = RandomExamples(12, 0, 30, 7);
  std::vector<size_t> rows(examples.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = i;
  const Batch padded = MakeBatch(examples, rows, 64);
  const std::vector<Pack> packs = PackRows(examples, rows, 64);
  ASSERT_LT(packs.size(), rows.size() / 2) << "the test needs several examples per row";
  const Batch packed = MakePackedBatch(examples, packs, 64);
  ASSERT_GE(packed.segments.groups.size(), 2u) << "the test needs attention groups of different lengths";
  for (const auto& [type, kv_heads] : std::vector<std::pair<std::string, int64_t>>{{"llama", 2}, {"qwen2", 4}}) {
    const std::string dir = WriteModel(type, 4, kv_heads);
    for (bool quantize : {false, true}) {
      for (bool checkpointing : {false, true}) {
        SCOPED_TRACE(type + (quantize ? " nf4" : " dense") + (checkpointing ? " checkpointed" : ""));
        Adapted a = Load(dir, quantize), b = Load(dir, quantize);
        const LossAndGradients reference = Backward(a, padded, checkpointing);
        // Packed, then packed with the vocabulary loss in chunks of 7 of its loss rows.
        for (int64_t chunk_rows : {0, 7}) {
          const LossAndGradients result = Backward(b, packed, checkpointing, chunk_rows);
          EXPECT_NEAR(result.loss, reference.loss, 1e-5 * std::abs(reference.loss)) << "chunk rows " << chunk_rows;
          ASSERT_EQ(result.gradients.size(), reference.gradients.size());
          for (size_t i = 0; i < result.gradients.size(); ++i) {
            ASSERT_GT(reference.gradients[i].abs().max().item<double>(), 0) << "param " << i;
            EXPECT_LT(MaxRelativeDifference(result.gradients[i], reference.gradients[i]), 1e-5)
                << "param " << i << ", chunk rows " << chunk_rows;
          }
        }
      }
    }
  }
}

std::vector<at::Tensor> Snapshot(Adapted& m) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : LoraParameters(*m.modules)) out.push_back(p.detach().clone());
  return out;
}

std::vector<at::Tensor> Train(const std::string& dir, const std::vector<TrainingExample>& examples,
                              const TrainerOptions& options, TrainingSummary* summary) {
  Adapted m = Load(dir, /*quantize=*/true);
  auto result = TrainLora(m.loaded.model, *m.modules, examples, options, [](const TrainingEvent&) { return true; });
  EXPECT_OK(result.status());
  *summary = *result;
  return Snapshot(m);
}

// Examples of 8 tokens in rows of 32: a packed batch of 2 rows holds exactly 8 examples,
// the same 8 that PlanEpoch puts in an unpacked batch of 8 (both plans shuffle the same
// way). Two epochs of QLoRA training then agree step by step.
TEST(PackingTest, TrainingPackedEqualsTrainingUnpackedOnTheSameBatches) {
  const std::string dir = WriteModel("llama", 4, 2);
  const std::vector<TrainingExample> examples = RandomExamples(32, 8, 8, 9);
  TrainerOptions unpacked;
  unpacked.epochs = 2;
  unpacked.batch_size = 8;
  unpacked.max_seq_len = 32;
  unpacked.learning_rate = 1e-3;
  unpacked.seed = 4;
  TrainerOptions packed = unpacked;
  packed.packing = true;
  packed.batch_size = 2;
  TrainingSummary a, b;
  const std::vector<at::Tensor> reference = Train(dir, examples, unpacked, &a);
  const std::vector<at::Tensor> result = Train(dir, examples, packed, &b);
  ASSERT_EQ(a.steps, 8);
  ASSERT_EQ(b.steps, a.steps);
  EXPECT_EQ(b.tokens_seen, a.tokens_seen);
  for (size_t s = 0; s < a.step_losses.size(); ++s)
    EXPECT_NEAR(b.step_losses[s], a.step_losses[s], 1e-5 * a.step_losses[s]) << "step " << s;
  ASSERT_EQ(result.size(), reference.size());
  for (size_t i = 0; i < result.size(); ++i)
    EXPECT_LT(MaxRelativeDifference(result[i], reference[i]), 1e-5) << "param " << i;
}

// A packed run with dropout, interrupted mid-epoch and resumed from its checkpoint, ends
// bit-identical to an uninterrupted one (the plan and the per-pack dropout masks replay);
// the checkpoint is refused by the same run without packing.
TEST(PackingTest, InterruptedPackedRunResumesBitIdentical) {
  const std::string dir = WriteModel("llama", 4, 2);
  const std::vector<TrainingExample> examples = RandomExamples(40, 0, 12, 13);
  TrainerOptions options;
  options.packing = true;
  options.epochs = 2;
  options.batch_size = 2;
  options.max_seq_len = 24;
  options.gradient_accumulation = 2;
  options.learning_rate = 1e-2;
  options.seed = 6;
  Adapted reference = Load(dir, true, 0.1);
  ASSERT_OK_AND_ASSIGN(TrainingSummary full, TrainLora(reference.loaded.model, *reference.modules, examples, options));
  ASSERT_GE(full.steps, 6);
  const std::string checkpoints = qlorad::testing::MakeTempDir("packing_resume");
  CheckpointOptions ckpt{checkpoints, 2, 2};
  {
    Adapted first = Load(dir, true, 0.1);
    ASSERT_OK_AND_ASSIGN(TrainingSummary part, TrainLora(first.loaded.model, *first.modules, examples, options,
                                                         [](const TrainingEvent& e) { return e.step < 3; }, ckpt));
    EXPECT_TRUE(part.cancelled);
  }
  TrainerOptions unpacked = options;
  unpacked.packing = false;
  Adapted other = Load(dir, true, 0.1);
  EXPECT_THAT(TrainLora(other.loaded.model, *other.modules, examples, unpacked, nullptr, ckpt).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("different run")));
  Adapted resumed = Load(dir, true, 0.1);
  ASSERT_OK_AND_ASSIGN(TrainingSummary rest, TrainLora(resumed.loaded.model, *resumed.modules, examples, options, nullptr, ckpt));
  EXPECT_EQ(rest.resumed_from_step, 3);
  EXPECT_EQ(rest.step_losses, full.step_losses);
  const std::vector<at::Tensor> a = Snapshot(resumed), b = Snapshot(reference);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "adapter tensor " << i;
}

TEST(PackingTest, ATooLongExampleIsTruncatedAsUnpacked) {
  const std::vector<TrainingExample> examples = RandomExamples(3, 20, 20, 2);
  const std::vector<Pack> packs = PackRows(examples, {0, 1, 2}, 12);
  ASSERT_EQ(packs.size(), 3u);  // 12 tokens each after truncation: one per row
  const Batch packed = MakePackedBatch(examples, packs, 12), padded = MakeBatch(examples, {0, 1, 2}, 12);
  EXPECT_TRUE(at::equal(packed.ids.view({3, 12}), padded.ids));
  EXPECT_TRUE(at::equal(packed.targets.view({3, 12}), padded.targets));
  EXPECT_TRUE(at::equal(packed.weights.view({3, 12}), padded.weights));
}

}  // namespace
}  // namespace qlorad
