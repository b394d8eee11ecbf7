#include "core/model/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kLlama32[] = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
  "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
  "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256, "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0, "tie_word_embeddings": true, "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009], "max_position_embeddings": 131072,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"}})";

TEST(ModelConfigTest, ParsesLlama32) {
  ASSERT_OK_AND_ASSIGN(ModelConfig c, ParseModelConfig(kLlama32, "config.json"));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.QueryGroups(), 4);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  // Llama 3.2 1B has 1.236B parameters.
  EXPECT_NEAR(c.ParameterCount() / 1e9, 1.236, 0.001);
}

TEST(ModelConfigTest, DefaultsKvHeadsAndHeadDim) {
  ASSERT_OK_AND_ASSIGN(ModelConfig c, ParseModelConfig(R"({"model_type":"mistral","hidden_size":64,
      "intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100})", "c"));
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.architecture, "MistralForCausalLM");
}

TEST(ModelConfigTest, Qwen2HasQkvBiases) {
  ASSERT_OK_AND_ASSIGN(ModelConfig c, ParseModelConfig(R"({"architectures":["Qwen2ForCausalLM"],"hidden_size":64,
      "intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100})", "c"));
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
}

TEST(ModelConfigTest, UnknownArchitectureListsSupported) {
  EXPECT_THAT(ParseModelConfig(R"({"model_type":"gpt2","architectures":["GPT2LMHeadModel"]})", "dir/config.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("gpt2"), HasSubstr("llama, mistral, qwen2"), HasSubstr("dir/config.json"))));
}

TEST(ModelConfigTest, MissingFieldIsNamed) {
  EXPECT_THAT(ParseModelConfig(R"({"model_type":"llama","hidden_size":64,"num_hidden_layers":2,
      "num_attention_heads":4,"vocab_size":100})", "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'intermediate_size' is missing")));
}

TEST(ModelConfigTest, InconsistentOrMalformed) {
  EXPECT_THAT(ParseModelConfig(R"({"model_type":"llama","hidden_size":64,"intermediate_size":1,"num_hidden_layers":2,
      "num_attention_heads":4,"num_key_value_heads":3,"vocab_size":100})", "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_key_value_heads")));
  EXPECT_THAT(ParseModelConfig(R"({"model_type":"llama","hidden_size":"big"})", "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'hidden_size'")));
  EXPECT_THAT(ParseModelConfig("[1,2]", "c"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON object")));
  EXPECT_THAT(ParseModelConfig(R"({"model_type":"llama","hidden_size":64,"intermediate_size":1,"num_hidden_layers":2,
      "num_attention_heads":4,"vocab_size":100,"rope_scaling":{"rope_type":"yarn","factor":2}})", "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("yarn")));
}

// Found by tests/fuzz/model_config_fuzzer (it threw nlohmann's type_error): string fields
// holding another JSON type are an error naming the field.
TEST(ModelConfigTest, StringFieldsOfAnotherTypeAreNamed) {
  EXPECT_THAT(ParseModelConfig(R"({"architectures":["LlamaForCausalLM"],"model_type":4})", "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'model_type' must be a string")));
  std::string llama(kLlama32);
  EXPECT_THAT(ParseModelConfig(llama.replace(llama.find("\"rope_type\": \"llama3\""), 21, "\"rope_type\": [1]"), "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'rope_type' must be a string")));
  llama = kLlama32;
  EXPECT_THAT(ParseModelConfig(llama.insert(1, "\"torch_dtype\": {}, "), "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'torch_dtype' must be a string")));
}

TEST(ModelConfigTest, JsonRoundTrip) {
  ASSERT_OK_AND_ASSIGN(ModelConfig c, ParseModelConfig(kLlama32, "config.json"));
  ASSERT_OK_AND_ASSIGN(ModelConfig again, ParseModelConfig(ModelConfigToJson(c), "again"));
  EXPECT_EQ(ModelConfigToJson(again), ModelConfigToJson(c));
}

}  // namespace
}  // namespace qlorad
