// Adapter residency and fault isolation on the serving engine: the LRU bound demotes
// the least recently used unpinned adapter and a request brings it back; pinned
// adapters stay; a request keeps the copy it was admitted with through unload; and a
// corrupt file, a wrong-base adapter and an adapter with mismatched shapes are
// refused with clear errors while traffic on another adapter goes on unaffected.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/serve/serving_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/serve/serve_fixture.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::serve {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

AdapterResidency Find(const ServingEngine& engine, const std::string& id) {
  for (const AdapterResidency& r : engine.Residency())
    if (r.id == id) return r;
  ADD_FAILURE() << id << " is not registered";
  return {};
}

GenerateCall Call(const std::string& adapter, std::vector<int64_t> prompt) {
  GenerateCall call;
  call.adapter_id = adapter;
  call.prompt_ids = std::move(prompt);
  call.max_new_tokens = 4;
  return call;
}

TEST(AdapterRegistryTest, LruDemotesUnpinnedAdaptersAndRequestsBringThemBack) {
  ServeFixture fixture;
  EngineOptions options = fixture.EngineOptionsFor(true);
  options.max_device_adapters = 2;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(options));
  const std::string fp = engine->fingerprint();
  ASSERT_OK(engine->LoadAdapter("pinned@1", fixture.MakeAdapter(fp, 1), false, /*pin=*/true));
  ASSERT_OK(engine->LoadAdapter("a@1", fixture.MakeAdapter(fp, 2)));
  ASSERT_OK_AND_ASSIGN(GenerateOutcome first, engine->Generate(Call("a@1", fixture.RandomPrompt(8, 1))));
  ASSERT_OK(engine->LoadAdapter("b@1", fixture.MakeAdapter(fp, 3)));  // a@1 is the LRU unpinned one
  EXPECT_EQ(Find(*engine, "a@1").tier, AdapterTier::kDisk);  // CPU serving: host == device, so disk
  EXPECT_EQ(Find(*engine, "pinned@1").tier, AdapterTier::kDevice);
  EXPECT_EQ(Find(*engine, "b@1").tier, AdapterTier::kDevice);
  EXPECT_TRUE(engine->IsLoaded("a@1"));
  EXPECT_EQ(engine->FindAdapter("a@1"), nullptr);

  ASSERT_OK_AND_ASSIGN(GenerateOutcome again, engine->Generate(Call("a@1", fixture.RandomPrompt(8, 1))));
  EXPECT_EQ(again.tokens, first.tokens);  // the reloaded adapter is the same adapter
  EXPECT_EQ(Find(*engine, "a@1").tier, AdapterTier::kDevice);
  EXPECT_EQ(Find(*engine, "a@1").loads, 2);
  EXPECT_EQ(Find(*engine, "a@1").evictions, 1);
  EXPECT_EQ(Find(*engine, "b@1").tier, AdapterTier::kDisk);
  EXPECT_EQ(Find(*engine, "pinned@1").evictions, 0);
  const EngineStats stats = engine->DrainStats();
  EXPECT_EQ(stats.adapters.evictions, 2);
  EXPECT_EQ(stats.adapters.loads, 4);
}

TEST(AdapterRegistryTest, UnloadDoesNotTouchTheCopyARequestPinned) {
  ServeFixture fixture;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(fixture.EngineOptionsFor(true)));
  ASSERT_OK(engine->LoadAdapter("a@1", fixture.MakeAdapter(engine->fingerprint(), 2)));
  std::shared_ptr<const ServingAdapter> held = engine->FindAdapter("a@1");
  ASSERT_OK(engine->UnloadAdapter("a@1"));
  EXPECT_FALSE(engine->IsLoaded("a@1"));
  EXPECT_GT(held->modules.begin()->second.a.numel(), 0);  // still valid for whoever holds it
  EXPECT_THAT(engine->Generate(Call("a@1", fixture.RandomPrompt(5, 1))).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not loaded")));
  EXPECT_THAT(engine->UnloadAdapter("a@1"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("not loaded")));
}

TEST(AdapterRegistryTest, BadAdaptersAreRefusedWhileOtherTrafficContinues) {
  ServeFixture fixture;
  ASSERT_OK_AND_ASSIGN(auto engine, ServingEngine::Create(fixture.EngineOptionsFor(true)));
  const std::string fp = engine->fingerprint();
  ASSERT_OK(engine->LoadAdapter("good@1", fixture.MakeAdapter(fp, 5)));
  ASSERT_OK_AND_ASSIGN(GenerateOutcome expected, engine->Generate(Call("good@1", fixture.RandomPrompt(12, 4))));

  std::atomic<bool> stop{false};
  std::atomic<int> served{0}, wrong{0};
  std::thread traffic([&] {
    while (!stop) {
      auto out = engine->Generate(Call("good@1", fixture.RandomPrompt(12, 4)));
      if (!out.ok() || out->tokens != expected.tokens) ++wrong;
      ++served;
    }
  });

  // A truncated safetensors file.
  const std::string corrupt = fixture.MakeAdapter(fp, 6);
  const std::string weights = corrupt + "/adapter_model.safetensors";
  std::filesystem::resize_file(weights, std::filesystem::file_size(weights) / 2);
  const absl::Status truncated = engine->LoadAdapter("corrupt@1", corrupt);
  EXPECT_FALSE(truncated.ok());
  EXPECT_THAT(std::string(truncated.message()), HasSubstr("adapter_model.safetensors"));
  // Trained on another base.
  EXPECT_THAT(engine->LoadAdapter("wrongbase@1", fixture.MakeAdapter("sha256:0123", 7)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("trained on base")));
  // Shapes of a wider model.
  ModelConfig wider = ServeFixture::Config();
  wider.intermediate_size = 256;
  EXPECT_THAT(engine->LoadAdapter("shapes@1", fixture.MakeAdapter(fp, 8, wider)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mlp")));
  while (served < 3) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  traffic.join();
  EXPECT_EQ(wrong, 0);
  for (const char* id : {"corrupt@1", "wrongbase@1", "shapes@1"}) EXPECT_FALSE(engine->IsLoaded(id)) << id;
  EXPECT_TRUE(engine->IsLoaded("good@1"));
  EXPECT_EQ(engine->DrainStats().adapters.load_failures, 3);
}

}  // namespace
}  // namespace qlorad::serve
