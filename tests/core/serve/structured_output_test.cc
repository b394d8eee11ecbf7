// Structured outputs inside the continuous batcher: constrained and free rows share
// every step; a free row's greedy tokens are the same as when it runs alone, each
// constrained row's text validates (parsed by nlohmann, rules checked here), the mask
// is per row. Also: stop strings end the text before them, logprobs come per token,
// a bad schema is refused before admission.
#include <cmath>
#include <thread>

#include "core/serve/serving_engine.h"
#include "core/serve/stop_strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/core/serve/serve_fixture.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::serve {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kSchema[] = R"({"type":"object","properties":{"label":{"enum":["spam","ham"]},
  "score":{"type":"integer","minimum":1,"maximum":5},"words":{"type":"array","items":{"type":"string","maxLength":6},"maxItems":3}},
  "required":["label","score","words"],"additionalProperties":false})";

GenerateCall Call(const std::vector<int64_t>& prompt, bool constrained, uint64_t seed) {
  GenerateCall call;
  call.prompt_ids = prompt;
  call.max_new_tokens = 60;
  call.sampling = {constrained ? 1.0 : 0.0, 0, 1.0, seed};
  if (constrained) call.constraint = {constrain::ConstraintSpec::Kind::kJsonSchema, kSchema, {}, "guided_json"};
  return call;
}

TEST(StructuredOutputBatching, ConstrainedAndFreeRowsShareABatch) {
  ServeFixture fixture;
  ASSERT_OK_AND_ASSIGN(auto solo_engine, ServingEngine::Create(fixture.EngineOptionsFor(true)));
  constexpr int kRows = 8;
  std::vector<std::vector<int64_t>> solo(kRows);
  for (int r = 0; r < kRows; r += 2) {
    ASSERT_OK_AND_ASSIGN(GenerateOutcome o, solo_engine->Generate(Call(fixture.RandomPrompt(5 + r, r), false, r)));
    solo[r] = o.tokens;
  }
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(fixture.EngineOptionsFor(/*start_batching=*/false)));
  std::vector<absl::StatusOr<GenerateOutcome>> out(kRows, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < kRows; ++r)
    threads.emplace_back([&, r] { out[r] = engine->Generate(Call(fixture.RandomPrompt(5 + r, r), r % 2 == 1, r)); });
  while (engine->DrainStats().batch.waiting < kRows) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  engine->StartBatching();
  for (auto& t : threads) t.join();
  EXPECT_GT(engine->DrainStats().batch.max_batch_rows, kRows / 2);  // they really shared steps
  for (int r = 0; r < kRows; ++r) {
    ASSERT_OK(out[r].status());
    if (r % 2 == 0) {
      EXPECT_EQ(out[r]->tokens, solo[r]) << "free row " << r << " changed by its constrained neighbours";
      continue;
    }
    EXPECT_EQ(out[r]->finish_reason, FinishReason::kStop) << out[r]->text;
    auto v = nlohmann::json::parse(out[r]->text, nullptr, false);
    ASSERT_TRUE(v.is_object()) << out[r]->text;
    EXPECT_TRUE(v["label"] == "spam" || v["label"] == "ham") << out[r]->text;
    EXPECT_GE(v["score"].get<int>(), 1);
    EXPECT_LE(v["score"].get<int>(), 5);
    EXPECT_LE(v["words"].size(), 3u);
    EXPECT_EQ(v.size(), 3u);
  }
}

TEST(StructuredOutputBatching, RefusedSchemaCostsNoSlotAndChoiceIsGreedyOverAllowedTokens) {
  ServeFixture fixture;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(fixture.EngineOptionsFor(true)));
  GenerateCall bad = Call(fixture.RandomPrompt(6, 1), true, 1);
  bad.constraint.text = R"({"type":"object","patternProperties":{}})";
  EXPECT_THAT(engine->Generate(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("guided_json: keyword 'patternProperties'")));
  EXPECT_EQ(engine->in_flight(), 0);
  GenerateCall choice = Call(fixture.RandomPrompt(6, 2), false, 0);
  choice.constraint = {constrain::ConstraintSpec::Kind::kChoice, "", {"alpha", "beta gamma"}, "guided_choice"};
  choice.keep_logits = true;
  ASSERT_OK_AND_ASSIGN(GenerateOutcome o, engine->Generate(choice));
  EXPECT_THAT(o.text, ::testing::AnyOf("alpha", "beta gamma"));
  EXPECT_EQ(o.finish_reason, FinishReason::kStop);
}

TEST(StructuredOutputBatching, LogprobsAreTheModelsLogSoftmax) {
  ServeFixture fixture;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(fixture.EngineOptionsFor(true)));
  GenerateCall call = Call(fixture.RandomPrompt(7, 3), false, 0);
  call.max_new_tokens = 6;
  call.top_logprobs = 3;
  call.keep_logits = true;
  ASSERT_OK_AND_ASSIGN(GenerateOutcome o, engine->Generate(call));
  ASSERT_EQ(o.logprobs.size(), o.tokens.size());
  for (size_t i = 0; i < o.tokens.size(); ++i) {
    at::Tensor reference = at::log_softmax(o.logits[i].to(at::kDouble), -1);
    EXPECT_NEAR(o.logprobs[i].logprob, reference[o.tokens[i]].item<double>(), 1e-4);
    ASSERT_EQ(o.logprobs[i].top.size(), 3u);
    EXPECT_EQ(o.logprobs[i].top[0].first, o.tokens[i]);  // greedy: the chosen token is the most likely
    EXPECT_GE(o.logprobs[i].top[0].second, o.logprobs[i].top[2].second);
  }
}

TEST(StopStrings, HoldsBackPrefixesAndEndsBeforeTheStop) {
  StopStringFilter filter({"###", "\nUser:"});
  bool stopped = false;
  EXPECT_EQ(filter.Push("Hello #", &stopped), "Hello ");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(filter.Push("# no", &stopped), "## no");  // "## n" is no stop: released
  EXPECT_EQ(filter.Push(" more\nUs", &stopped), " more");
  EXPECT_EQ(filter.Push("er: bye", &stopped), "");
  EXPECT_TRUE(stopped);
  StopStringFilter tail({"END"});
  EXPECT_EQ(tail.Push("abcEN", &stopped), "abc");
  EXPECT_EQ(tail.Flush(), "EN");
  EXPECT_THAT(ValidateStopStrings({"a", "b", "c", "d", "e"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stop: at most 4")));
  EXPECT_THAT(ValidateStopStrings({""}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must not be empty")));
}

TEST(StopStrings, EngineEndsTextBeforeTheStopString) {
  ServeFixture fixture;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(fixture.EngineOptionsFor(true)));
  GenerateCall call = Call(fixture.RandomPrompt(9, 4), false, 0);
  call.max_new_tokens = 30;
  ASSERT_OK_AND_ASSIGN(GenerateOutcome full, engine->Generate(call));
  ASSERT_GT(full.text.size(), 8u);
  const std::string stop = full.text.substr(4, 3);
  call.stop = {stop};
  std::string streamed;
  ASSERT_OK_AND_ASSIGN(GenerateOutcome cut, engine->Generate(call, [&](const std::string& piece, int64_t) {
    streamed += piece;
    return true;
  }));
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_EQ(streamed, cut.text);  // the stop string never reached the stream
  EXPECT_EQ(cut.finish_reason, FinishReason::kStop);
}

}  // namespace
}  // namespace qlorad::serve
