// Continuous batching with mixed adapters: every row of a batch that mixes 8
// adapters (3 of them DoRA) and base-only rows (prompts of different lengths, chunked prefill)
// produces the same greedy tokens and logits as that request alone on a model with
// its adapter merged into a full-precision copy of the base, recomputed without any
// KV cache; with the LoRA factors in fp32 and in bf16 (--adapter-factors bf16, the reference
// merging the same rounded factors). Also: KV blocks are freed on completion and cancel, admission queues
// when the budget is full and refuses past the bound.
#include <atomic>
#include <chrono>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/model/loader.h"
#include "core/model/random_model.h"
#include "core/serve/random_adapter.h"
#include "core/serve/serving_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/serve/serve_fixture.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::serve {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

// Dense layers with W + scaling·B·A folded in (the reference for one adapter); for DoRA
// PEFT's merge m / ‖W + s·BA‖_row ⊙ (W + s·BA), from the stored magnitude.
LinearFactory MergedFactory(std::shared_ptr<const ServingAdapter> adapter) {
  return [adapter](const LinearSpec& spec) -> absl::StatusOr<std::shared_ptr<LinearLayer>> {
    auto built = MakeDenseLinear(spec);
    if (!built.ok() || adapter == nullptr) return built;
    auto* dense = static_cast<DenseLinear*>(built->get());
    auto it = adapter->modules.find(spec.module);
    if (it == adapter->modules.end()) return built;
    const ModuleDelta& d = it->second;  // factors as served: fp32, or bf16 widened exactly
    at::Tensor merged = dense->weight() + at::matmul(d.b.to(at::kFloat), d.a.to(at::kFloat)) * d.scaling;
    if (d.magnitude.defined()) merged = merged * (d.magnitude / merged.norm(2, {1})).unsqueeze(1);
    std::optional<at::Tensor> bias;
    if (dense->bias().defined()) bias = dense->bias();
    return std::shared_ptr<LinearLayer>(std::make_shared<DenseLinear>(merged, bias));
  };
}

// Greedy decoding by full recomputation (no cache): tokens and per-step logits.
std::pair<std::vector<int64_t>, std::vector<at::Tensor>> ReferenceGreedy(LlamaModel& model, std::vector<int64_t> ids,
                                                                         int64_t steps) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> out;
  std::vector<at::Tensor> logits;
  for (int64_t i = 0; i < steps; ++i) {
    at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0);
    at::Tensor last = model->forward({input, {}, {}, nullptr})[0][-1].to(at::kFloat);
    logits.push_back(last);
    ids.push_back(last.argmax().item<int64_t>());
    out.push_back(ids.back());
  }
  return {out, logits};
}

// Runs every call concurrently in one engine batch (the batcher starts once all wait), then
// checks each outcome against its request alone on the merged model, recomputed without cache.
void ExpectBatchMatchesMergedModels(const ServeFixture& fixture, ServingEngine& engine,
                                    const std::vector<GenerateCall>& calls) {
  std::vector<absl::StatusOr<GenerateOutcome>> outcomes(calls.size(), absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (size_t r = 0; r < calls.size(); ++r) threads.emplace_back([&, r] { outcomes[r] = engine.Generate(calls[r]); });
  while (engine.DrainStats().batch.waiting < static_cast<int64_t>(calls.size()))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  engine.StartBatching();
  for (auto& t : threads) t.join();
  EXPECT_EQ(engine.DrainStats().batch.max_batch_rows, static_cast<int64_t>(calls.size()));

  for (size_t r = 0; r < calls.size(); ++r) {
    ASSERT_OK(outcomes[r].status());
    const std::string& id = calls[r].adapter_id;
    LoadOptions load;
    load.linear_factory = MergedFactory(id.empty() ? nullptr : engine.FindAdapter(id));
    ASSERT_OK_AND_ASSIGN(LoadedModel merged, LoadModel(fixture.model_dir(), load));
    auto [tokens, logits] = ReferenceGreedy(merged.model, calls[r].prompt_ids, calls[r].max_new_tokens);
    EXPECT_EQ(outcomes[r]->tokens, tokens) << "request " << r << " adapter '" << id << "'";
    ASSERT_EQ(outcomes[r]->logits.size(), logits.size());
    for (size_t i = 0; i < logits.size(); ++i) {
      const double diff = (outcomes[r]->logits[i] - logits[i]).abs().max().item<double>();
      EXPECT_LT(diff, 1e-5 * std::max(1.0, logits[i].abs().max().item<double>()))
          << "request " << r << " step " << i << " adapter '" << id << "'";
    }
  }
  const EngineStats stats = engine.DrainStats();
  EXPECT_EQ(stats.batch.kv_blocks_used, 0);
  EXPECT_EQ(stats.batch.kv_blocks_reserved, 0);
}

// EngineOptions::adapter_factors: "compute" (fp32 factors) and "bf16" (the reference merges
// the bf16 factors as served, widened, so the comparison stays at fp32 tolerance).
class MixedBatchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MixedBatchTest, MixedAdapterBatchMatchesEachRequestAloneOnAMergedModel) {
  ServeFixture fixture;
  EngineOptions options = fixture.EngineOptionsFor(/*start_batching=*/false);
  options.prefill_chunk_tokens = 32;  // prompts split across steps while earlier ones decode
  options.adapter_factors = GetParam();
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(options));
  std::vector<std::string> ids = {""};  // base-only rows
  for (int i = 0; i < 8; ++i) {  // every third adapter is DoRA: DoRA, LoRA and base rows share batches
    ids.push_back(absl::StrCat("a", i, "@1"));
    ASSERT_OK(engine->LoadAdapter(ids.back(), fixture.MakeAdapter(engine->fingerprint(), 100 + i, ServeFixture::Config(),
                                                                  /*dora=*/i % 3 == 0)));
  }
  // Factors in the dtype asked for, B as a transposed view of a contiguous Bᵀ (the CPU
  // layout); DoRA's magnitude and row gain stay in the compute dtype.
  const at::ScalarType expected = GetParam() == "bf16" ? at::kBFloat16 : at::kFloat;
  for (const char* id : {"a0@1", "a1@1"})
    for (const auto& [module, delta] : engine->FindAdapter(id)->modules) {
      EXPECT_EQ(delta.a.scalar_type(), expected) << id << " " << module;
      EXPECT_EQ(delta.b.scalar_type(), expected) << id << " " << module;
      EXPECT_TRUE(delta.a.is_contiguous() && delta.b.t().is_contiguous()) << id << " " << module;
      if (delta.magnitude.defined()) {
        EXPECT_EQ(delta.magnitude.scalar_type(), at::kFloat) << id << " " << module;
        EXPECT_EQ(delta.row_gain.scalar_type(), at::kFloat) << id << " " << module;
      }
    }
  EXPECT_TRUE(engine->FindAdapter("a0@1")->config.use_dora);
  std::vector<GenerateCall> calls(12);
  for (int r = 0; r < 12; ++r) {
    calls[r].adapter_id = ids[r % ids.size()];
    calls[r].prompt_ids = fixture.RandomPrompt(3 + 2 * r, r);
    calls[r].max_new_tokens = 10;
    calls[r].keep_logits = true;
  }
  ExpectBatchMatchesMergedModels(fixture, *engine, calls);
}

// Five rows of one LoRA adapter and four of a DoRA one beside a single row of a third: the
// gathered-matmul path (groups of >= 4 rows, DoRA's rescale after it) next to the SGMV
// kernel, in both factor dtypes.
TEST_P(MixedBatchTest, ManyRowsOfOneAdapterMatchTheMergedModel) {
  ServeFixture fixture;
  EngineOptions options = fixture.EngineOptionsFor(/*start_batching=*/false);
  options.adapter_factors = GetParam();
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(options));
  for (int i = 0; i < 2; ++i)
    ASSERT_OK(engine->LoadAdapter(absl::StrCat("m", i, "@1"), fixture.MakeAdapter(engine->fingerprint(), 40 + i)));
  ASSERT_OK(engine->LoadAdapter("d@1", fixture.MakeAdapter(engine->fingerprint(), 45, ServeFixture::Config(), true)));
  std::vector<GenerateCall> calls(11);
  for (int r = 0; r < 11; ++r) {
    calls[r].adapter_id = r < 5 ? "m0@1" : (r < 9 ? "d@1" : (r == 9 ? "m1@1" : ""));
    calls[r].prompt_ids = fixture.RandomPrompt(4 + 3 * r, 50 + r);
    calls[r].max_new_tokens = 6;
    calls[r].keep_logits = true;
  }
  ExpectBatchMatchesMergedModels(fixture, *engine, calls);
}

INSTANTIATE_TEST_SUITE_P(AdapterFactors, MixedBatchTest, ::testing::Values("compute", "bf16"));

// bf16 factors are rounded copies at half the bytes: outputs move by about bf16's rounding
// of the delta, a small fraction of what the adapter itself moves them; an unknown name is refused.
TEST(BatchingTest, Bf16FactorsStayCloseToFp32AndUnknownNamesAreRefused) {
  ServeFixture fixture;
  GenerateCall call;
  call.prompt_ids = fixture.RandomPrompt(9, 3);
  call.max_new_tokens = 1;
  call.keep_logits = true;
  std::vector<at::Tensor> logits;  // base (fp32 engine), adapter with fp32 factors, with bf16 factors
  std::vector<int64_t> bytes;
  for (const char* factors : {"compute", "bf16"}) {
    EngineOptions options = fixture.EngineOptionsFor(true);
    options.adapter_factors = factors;
    ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(options));
    ASSERT_OK(engine->LoadAdapter("a@1", fixture.MakeAdapter(engine->fingerprint(), 1)));
    bytes.push_back(engine->FindAdapter("a@1")->bytes);
    if (logits.empty()) {
      ASSERT_OK_AND_ASSIGN(GenerateOutcome base, engine->Generate(call));
      logits.push_back(base.logits[0]);
    }
    call.adapter_id = "a@1";
    ASSERT_OK_AND_ASSIGN(GenerateOutcome out, engine->Generate(call));
    call.adapter_id = "";
    logits.push_back(out.logits[0]);
  }
  EXPECT_EQ(bytes[1] * 2, bytes[0]);
  const double adapter_effect = (logits[1] - logits[0]).abs().max().item<double>();
  const double rounding = (logits[2] - logits[1]).abs().max().item<double>();
  EXPECT_GT(rounding, 0.0) << "bf16 factors were not rounded";
  EXPECT_LT(rounding, 0.05 * adapter_effect);
  EngineOptions bad = fixture.EngineOptionsFor(true);
  bad.adapter_factors = "fp8";
  EXPECT_THAT(ServingEngine::Create(bad).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("adapter_factors")));
}

TEST(BatchingTest, AdaptersChangeOutputsSoTheComparisonCanFail) {
  ServeFixture fixture;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(fixture.EngineOptionsFor(true)));
  ASSERT_OK(engine->LoadAdapter("a@1", fixture.MakeAdapter(engine->fingerprint(), 1)));
  GenerateCall call;
  call.prompt_ids = fixture.RandomPrompt(9, 3);
  call.max_new_tokens = 6;
  call.keep_logits = true;
  ASSERT_OK_AND_ASSIGN(GenerateOutcome base, engine->Generate(call));
  call.adapter_id = "a@1";
  ASSERT_OK_AND_ASSIGN(GenerateOutcome adapted, engine->Generate(call));
  EXPECT_GT((base.logits[0] - adapted.logits[0]).abs().max().item<double>(), 1e-2);
}

// A DoRA adapter's outputs differ from its A, B applied as plain LoRA: the magnitude is
// applied, so the mixed-batch comparison above can fail on it.
TEST(BatchingTest, DoraMagnitudeChangesOutputs) {
  ServeFixture fixture;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(fixture.EngineOptionsFor(true)));
  ASSERT_OK(engine->LoadAdapter("d@1", fixture.MakeAdapter(engine->fingerprint(), 5, ServeFixture::Config(), true)));
  GenerateCall call;
  call.adapter_id = "d@1";
  call.prompt_ids = fixture.RandomPrompt(9, 3);
  call.max_new_tokens = 1;
  call.keep_logits = true;
  ASSERT_OK_AND_ASSIGN(GenerateOutcome served, engine->Generate(call));
  auto as_lora = std::make_shared<ServingAdapter>(*engine->FindAdapter("d@1"));
  for (auto& [module, delta] : as_lora->modules) delta.magnitude = at::Tensor();
  LoadOptions load;
  load.linear_factory = MergedFactory(as_lora);
  ASSERT_OK_AND_ASSIGN(LoadedModel merged, LoadModel(fixture.model_dir(), load));
  auto [tokens, logits] = ReferenceGreedy(merged.model, call.prompt_ids, 1);
  EXPECT_GT((served.logits[0] - logits[0]).abs().max().item<double>(), 1e-2);
}

TEST(BatchingTest, CancelFreesTheSequenceBlocks) {
  ServeFixture fixture;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(fixture.EngineOptionsFor(true)));
  GenerateCall call;
  call.prompt_ids = fixture.RandomPrompt(40, 5);
  call.max_new_tokens = 32;
  int seen = 0;
  ASSERT_OK_AND_ASSIGN(GenerateOutcome out, engine->Generate(call, [&](const std::string&, int64_t) { return ++seen < 3; }));
  EXPECT_EQ(out.finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(out.tokens.size(), 3u);
  for (int i = 0; i < 500 && engine->DrainStats().batch.kv_blocks_used > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const EngineStats stats = engine->DrainStats();
  EXPECT_EQ(stats.batch.kv_blocks_used, 0);
  EXPECT_EQ(stats.batch.kv_blocks_reserved, 0);
  EXPECT_EQ(stats.batch.running, 0);
}

TEST(BatchingTest, AdmissionWaitsForKvBudgetThenRefusesPastTheQueueBound) {
  ServeFixture fixture;
  EngineOptions options = fixture.EngineOptionsFor(/*start_batching=*/false);
  options.max_prompt_tokens = 64;
  options.max_new_tokens = 16;
  options.kv_block_size = 16;
  options.kv_cache_bytes = 10 * fixture.KvBlockBytes(16);  // 10 blocks: three 36-position requests fit at once
  options.max_waiting = 5;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(options));
  GenerateCall call;
  call.prompt_ids = fixture.RandomPrompt(20, 9);
  call.max_new_tokens = 16;
  std::vector<absl::Status> results(7);
  std::vector<std::thread> threads;
  for (int i = 0; i < 7; ++i) threads.emplace_back([&, i] { results[i] = engine->Generate(call).status(); });
  for (int i = 0; i < 1000 && engine->DrainStats().batch.waiting < 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  for (int i = 0; i < 200; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  engine->StartBatching();
  for (auto& t : threads) t.join();
  int ok = 0, busy = 0;
  for (const absl::Status& s : results) {
    ok += s.ok();
    busy += absl::IsResourceExhausted(s);
  }
  EXPECT_EQ(ok, 5);
  EXPECT_EQ(busy, 2);
  EXPECT_LE(engine->DrainStats().batch.max_batch_rows, 3);  // the budget bounded the running batch

  call.prompt_ids = fixture.RandomPrompt(64, 1);
  call.max_new_tokens = 16;
  GenerateCall too_long = call;
  too_long.prompt_ids = fixture.RandomPrompt(65, 1);
  EXPECT_THAT(engine->Generate(too_long).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt")));
}

TEST(BatchingTest, RequestsPastTheModelContextAreRefusedBeforeAnyWork) {
  ServeFixture fixture;  // max_position_embeddings 512
  EngineOptions options = fixture.EngineOptionsFor(true);
  options.max_prompt_tokens = 500;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(options));
  GenerateCall call;
  call.adapter_id = "never-loaded@1";  // the context check comes first, so this is never looked up
  call.prompt_ids = fixture.RandomPrompt(480, 2);
  call.max_new_tokens = 40;
  EXPECT_THAT(engine->Generate(call).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context of 512")));
  options.max_lora_rank = 4096;
  EXPECT_THAT(ServingEngine::Create(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_lora_rank")));
}

}  // namespace
}  // namespace qlorad::serve
