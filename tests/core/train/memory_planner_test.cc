// The planner against the seed article's VRAM table (Llama 7B/13B/70B on a GPU, bf16
// compute, gradient checkpointing): full fine-tuning > 40 GB, LoRA 18-24 GB, QLoRA
// 8-12 GB (7B), 14-18 GB (13B), 48-56 GB (70B). The table's ranges match a sequence of
// 2048 tokens at batch 1 with the loss on every position (at seq 512 every figure is
// 2-6 GB lower: activations scale with batch x seq). Agreement with measured peak RSS
// on this machine is in tests/bench/RESULTS.md ("Memory planner").
#include "core/train/memory_planner.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

double PlanGiB(const std::string& preset, const std::string& method, int64_t batch, int64_t seq) {
  PlanInput in;
  auto config = PresetModelConfig(preset);
  EXPECT_TRUE(config.ok());
  in.config = *config;
  in.method = method;
  in.batch = batch;
  in.seq_len = seq;
  auto plan = PlanMemory(in);
  EXPECT_TRUE(plan.ok());
  return plan->total_bytes / 1e9;  // the table is in GB
}

TEST(MemoryPlannerTest, FallsInTheSeedTableRanges) {
  EXPECT_GT(PlanGiB("7B", "full", 1, 2048), 40);
  EXPECT_GE(PlanGiB("7B", "lora", 1, 2048), 18);
  EXPECT_LE(PlanGiB("7B", "lora", 1, 2048), 24);
  EXPECT_GE(PlanGiB("7B", "qlora", 1, 2048), 8);
  EXPECT_LE(PlanGiB("7B", "qlora", 1, 2048), 12);
  EXPECT_GE(PlanGiB("13B", "qlora", 1, 2048), 14);
  EXPECT_LE(PlanGiB("13B", "qlora", 1, 2048), 18);
  EXPECT_GE(PlanGiB("70B", "qlora", 1, 2048), 48);
  EXPECT_LE(PlanGiB("70B", "qlora", 1, 2048), 56);
  // Shorter sequences need less, never more.
  EXPECT_LT(PlanGiB("7B", "qlora", 1, 512), PlanGiB("7B", "qlora", 1, 2048));
}

int64_t Activations(const MemoryPlan& plan) {
  for (const auto& [name, bytes] : plan.breakdown)
    if (name == "activations") return bytes;
  ADD_FAILURE() << "no activations line";
  return 0;
}

// checkpoint_keep adds each kept base output, N·out·e, per layer: attention keeps q, k, v
// and o (down_proj's is skipped), all keeps gate and up too; DoRA keeps down_proj's, twice
// with dropout.
TEST(MemoryPlannerTest, CheckpointKeepAddsTheKeptOutputs) {
  PlanInput in;
  in.config = *PresetModelConfig("8B");  // GQA: k and v are 1024 wide
  in.batch = 2;
  in.seq_len = 512;
  ASSERT_OK_AND_ASSIGN(MemoryPlan none, PlanMemory(in));
  in.checkpoint_keep = "attention";
  ASSERT_OK_AND_ASSIGN(MemoryPlan attention, PlanMemory(in));
  in.checkpoint_keep = "all";
  ASSERT_OK_AND_ASSIGN(MemoryPlan all, PlanMemory(in));
  const int64_t tokens = 2 * 512, layers = 32, e = 2, h = 4096, kv = 1024, i = 14336;
  EXPECT_EQ(Activations(attention) - Activations(none), layers * tokens * (h + kv + kv + h) * e);
  EXPECT_EQ(Activations(all) - Activations(attention), layers * tokens * 2 * i * e);
  in.checkpoint_keep = "attention";
  in.lora.use_dora = true;
  in.lora.dropout = 0.05;
  ASSERT_OK_AND_ASSIGN(MemoryPlan dora_attention, PlanMemory(in));
  in.checkpoint_keep = "none";
  ASSERT_OK_AND_ASSIGN(MemoryPlan dora_none, PlanMemory(in));
  EXPECT_EQ(Activations(dora_attention) - Activations(dora_none), layers * tokens * (h + kv + kv + h + h) * e * 2);
  in.gradient_checkpointing = false;  // nothing is recomputed, so nothing extra is kept
  in.checkpoint_keep = "all";
  ASSERT_OK_AND_ASSIGN(MemoryPlan plain_all, PlanMemory(in));
  in.checkpoint_keep = "none";
  ASSERT_OK_AND_ASSIGN(MemoryPlan plain_none, PlanMemory(in));
  EXPECT_EQ(Activations(plain_all), Activations(plain_none));
  in.checkpoint_keep = "mlp";
  EXPECT_THAT(PlanMemory(in).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("checkpoint_keep")));
}

TEST(MemoryPlannerTest, BreakdownMovesTheRightWay) {
  PlanInput in;
  in.config = *PresetModelConfig("7B");
  ASSERT_OK_AND_ASSIGN(MemoryPlan checkpointed, PlanMemory(in));
  in.gradient_checkpointing = false;
  ASSERT_OK_AND_ASSIGN(MemoryPlan full_activations, PlanMemory(in));
  EXPECT_GT(full_activations.total_bytes, checkpointed.total_bytes);
  in.lora.r = 64;
  ASSERT_OK_AND_ASSIGN(MemoryPlan rank64, PlanMemory(in));
  EXPECT_EQ(rank64.trainable_params, 4 * full_activations.trainable_params);
  EXPECT_EQ(checkpointed.trainable_params, 39976960);  // r=16 on every linear layer of Llama-2-7B
  EXPECT_EQ(checkpointed.gpus.front().first, "24 GB");
  EXPECT_TRUE(checkpointed.gpus.front().second);
}

TEST(MemoryPlannerTest, BadInputNamesTheField) {
  PlanInput in;
  in.config = *PresetModelConfig("1B");
  in.method = "dora";
  EXPECT_THAT(PlanMemory(in).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("method")));
  EXPECT_THAT(PresetModelConfig("2B").status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("preset")));
}

}  // namespace
}  // namespace qlorad
