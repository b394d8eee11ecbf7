// PEFT's module selection and per-module rank/alpha, and reading adapter_config.json
// the way PEFT does. The target cases are PEFT's own (tests/test_tuners_utils.py
// REGEX_TEST_CASES, which pin check_target_module_exists); the pattern-key cases
// follow get_pattern_key's re.match(rf"(.*\.)?({key})$", name).
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/adapter/peft_config.h"
#include "core/adapter/peft_match.h"
#include "core/train/lora_model.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

struct TargetCase {
  std::string key;
  std::vector<std::string> target_list;
  std::string target_regex;  // non-empty: target_modules given as a string
  std::vector<int64_t> layers_to_transform;
  std::vector<std::string> layers_pattern;
  bool expected;
};

TEST(PeftTargets, PeftRegexTestCases) {
  const std::vector<TargetCase> cases = {
      {"", {}, "", {}, {}, false},
      {"", {"foo"}, "", {}, {}, false},
      {"foo", {}, "", {}, {}, false},
      {"foo", {"foo"}, "", {}, {}, true},
      {"foo", {"bar"}, "", {}, {}, false},
      {"foo", {"foo", "bar"}, "", {}, {}, true},
      {"foo", {}, "foo", {}, {}, true},
      {"foo", {}, ".*oo", {}, {}, true},
      {"foo", {}, "fo.*", {}, {}, true},
      {"foo", {}, ".*bar.*", {}, {}, false},
      {"foobar", {}, ".*oba.*", {}, {}, true},
      {"foo.bar.1.baz", {"baz"}, "", {1}, {"bar"}, true},
      {"foo.bar.1.baz", {"baz"}, "", {0}, {"bar"}, false},
      {"foo.bar.1.baz", {"baz"}, "", {2}, {"bar"}, false},
      {"foo.bar.10.baz", {"baz"}, "", {0}, {"bar"}, false},
      {"foo.bar.10.baz", {"baz"}, "", {1}, {"bar"}, false},
      {"foo.bar.1.baz", {"baz"}, "", {0, 1, 2}, {"bar"}, true},
      {"foo.bar.1.baz", {"baz", "spam"}, "", {1}, {"bar"}, true},
      {"foo.whatever.1.baz", {"baz"}, "", {1}, {}, true},
      {"foo.whatever.1.baz", {"baz"}, "", {0}, {}, false},
      {"transformer.h.1.attn.attention.q_proj.foo", {"q_proj"}, "", {}, {}, false},
      {"transformer.h.1.attn.attention.q_proj", {}, "", {}, {}, false},
      {"transformer.h.1.attn.attention.q_proj", {"q_proj"}, "", {}, {}, true},
      {"transformer.h.1.attn.attention.resid_dropout", {"q_proj", "v_proj"}, "", {}, {}, false},
      {"transformer.h.1.attn.attention.q_proj", {"q_proj"}, "", {1}, {"h"}, true},
      {"transformer.h.1.attn.attention.q_proj", {"q_proj"}, "", {0}, {"h"}, false},
      {"foo.bar.q_proj", {"q_proj"}, "", {}, {}, true},
      {"foo.bar.1.baz", {"baz"}, "", {1}, {"foo"}, false},
      {"foo.bar.1.baz", {"baz"}, "", {1}, {"baz"}, false},
      {"bar.1.baz", {"baz"}, "", {1}, {"bar"}, false},
      {"foo.bar.001.baz", {"baz"}, "", {1}, {"bar"}, true},
      {"foo.bar.1.spam.2.baz", {"baz"}, "", {1}, {"bar"}, true},
      {"foo.bar.2.spam.1.baz", {"baz"}, "", {1}, {"bar"}, false},
      {"blocks.1.weight", {"weight"}, "", {1}, {"blocks"}, false},
      {"mlp.blocks.1.weight", {"weight"}, "", {1}, {"blocks"}, true},
      {"mlp.blocks.1.bias", {"weight"}, "", {1}, {"blocks"}, false},
      // qlorad's names
      {"model.layers.3.mlp.up_proj", {"up_proj"}, "", {3}, {}, true},
      {"model.layers.3.mlp.up_proj", {"up_proj"}, "", {2}, {"layers"}, false},
      {"model.layers.3.mlp.up_proj", {"model.layers.3.mlp.up_proj"}, "", {0}, {}, true},  // full name: no layer filter
      {"model.layers.0.self_attn.q_proj", {}, R"(.*\.(q_proj|v_proj))", {}, {}, true},
      {"model.layers.0.self_attn.k_proj", {}, R"(.*\.(q_proj|v_proj))", {}, {}, false},
      {"model.layers.0.self_attn.q_proj", {}, "q_proj", {}, {}, false},  // a string is a full match
  };
  const std::vector<std::string> no_exclude;
  const std::string no_regex;
  for (const TargetCase& c : cases) {
    PeftTargetRules rules{c.target_list, c.target_regex, c.layers_to_transform, c.layers_pattern, no_exclude, no_regex};
    EXPECT_EQ(PeftTargets(rules, c.key), c.expected) << c.key << " regex='" << c.target_regex << "'";
  }
}

TEST(PeftTargets, ExcludeModules) {
  LoraConfig config;
  config.exclude_modules = {"layers.1.self_attn.q_proj"};
  EXPECT_TRUE(config.Targets("model.layers.0.self_attn.q_proj"));
  EXPECT_FALSE(config.Targets("model.layers.1.self_attn.q_proj"));
  config.exclude_modules.clear();
  config.exclude_modules_regex = R"(.*\.mlp\..*)";
  EXPECT_FALSE(config.Targets("model.layers.0.mlp.up_proj"));
  EXPECT_TRUE(config.Targets("model.layers.0.self_attn.v_proj"));
}

TEST(PeftPatternKey, MatchesLikeGetPatternKey) {
  const std::vector<std::string> keys = {"q_proj"};
  EXPECT_NE(PeftPatternKey(keys, "model.layers.0.self_attn.q_proj"), nullptr);
  EXPECT_EQ(PeftPatternKey({"proj"}, "model.layers.0.self_attn.q_proj"), nullptr);  // "(.*\.)?" needs the dot
  EXPECT_EQ(PeftPatternKey({"q_pro"}, "model.layers.0.self_attn.q_proj"), nullptr);  // "$"
  const std::vector<std::string> layer1 = {"layers.1.self_attn.q_proj"};
  EXPECT_NE(PeftPatternKey(layer1, "model.layers.1.self_attn.q_proj"), nullptr);
  EXPECT_EQ(PeftPatternKey(layer1, "model.layers.11.self_attn.q_proj"), nullptr);
  EXPECT_EQ(PeftPatternKey(layer1, "model.layers.21.self_attn.q_proj"), nullptr);
  EXPECT_NE(PeftPatternKey({"model.layers.1.self_attn.q_proj"}, "model.layers.1.self_attn.q_proj"), nullptr);
  const std::vector<std::string> regex = {R"(model\.layers\.[0-1]\.mlp\..*)"};
  EXPECT_NE(PeftPatternKey(regex, "model.layers.1.mlp.down_proj"), nullptr);
  EXPECT_EQ(PeftPatternKey(regex, "model.layers.2.mlp.down_proj"), nullptr);
  // First matching key in the given order wins.
  const std::vector<std::string> both = {"down_proj", "layers.1.mlp.down_proj"};
  EXPECT_EQ(*PeftPatternKey(both, "model.layers.1.mlp.down_proj"), "down_proj");
  const std::vector<std::string> reversed = {"layers.1.mlp.down_proj", "down_proj"};
  EXPECT_EQ(*PeftPatternKey(reversed, "model.layers.1.mlp.down_proj"), "layers.1.mlp.down_proj");
}

TEST(PeftLayerIndex, FirstNumberedSegment) {
  EXPECT_EQ(PeftLayerIndex("model.layers.12.mlp.up_proj", {}), 12);
  EXPECT_EQ(PeftLayerIndex("model.layers.12.mlp.up_proj", {"layers"}), 12);
  EXPECT_EQ(PeftLayerIndex("model.layers.12.mlp.up_proj", {"blocks"}), std::nullopt);
  EXPECT_EQ(PeftLayerIndex("model.layers.1.experts.0.w1", {}), 1);  // not the expert index
}

TEST(LoraConfig, RankAlphaScalingFollowPatternOrder) {
  LoraConfig config;
  config.r = 8;
  config.alpha = 16;
  config.rank_pattern = {{"layers.1.mlp.down_proj", 2}, {"down_proj", 4}};
  config.rank_pattern_order = {"layers.1.mlp.down_proj", "down_proj"};
  config.alpha_pattern = {{R"(model\.layers\.0\..*)", 3.0}};
  EXPECT_EQ(config.RankFor("model.layers.1.mlp.down_proj"), 2);
  EXPECT_EQ(config.RankFor("model.layers.0.mlp.down_proj"), 4);
  EXPECT_EQ(config.RankFor("model.layers.0.mlp.up_proj"), 8);
  config.rank_pattern_order = {"down_proj"};  // the unlisted key comes after
  EXPECT_EQ(config.RankFor("model.layers.1.mlp.down_proj"), 4);
  EXPECT_DOUBLE_EQ(config.AlphaFor("model.layers.0.self_attn.q_proj"), 3.0);
  EXPECT_DOUBLE_EQ(config.AlphaFor("model.layers.1.self_attn.q_proj"), 16.0);
  EXPECT_DOUBLE_EQ(config.ScalingFor("model.layers.1.self_attn.q_proj"), 2.0);
  config.use_rslora = true;
  EXPECT_DOUBLE_EQ(config.ScalingFor("model.layers.0.mlp.down_proj"), 3.0 / 2.0);  // alpha 3 / sqrt(4)
}

absl::StatusOr<LoraConfig> ReadConfigText(const std::string& json) {
  const std::string dir = qlorad::testing::MakeTempDir("peft_patterns_test");
  absl::Status written = WriteFileAtomically(dir + "/adapter_config.json", json);
  if (!written.ok()) return written;
  return ReadPeftConfig(dir);
}

TEST(ReadPeftConfig, PeftForms) {
  ASSERT_OK_AND_ASSIGN(LoraConfig config, ReadConfigText(R"({"peft_type":"LORA","r":8,"lora_alpha":16,
      "target_modules":["q_proj","v_proj","down_proj"],"layers_to_transform":1,"layers_pattern":"layers",
      "rank_pattern":{"v_proj":4,"layers.1.self_attn.v_proj":2},"alpha_pattern":{"down_proj":5},"use_rslora":true})"));
  EXPECT_EQ(config.layers_to_transform, std::vector<int64_t>({1}));
  EXPECT_EQ(config.layers_pattern, std::vector<std::string>({"layers"}));
  EXPECT_TRUE(config.Targets("model.layers.1.self_attn.q_proj"));
  EXPECT_FALSE(config.Targets("model.layers.0.self_attn.q_proj"));
  EXPECT_EQ(config.RankFor("model.layers.1.self_attn.v_proj"), 4);  // file order: "v_proj" first
  EXPECT_DOUBLE_EQ(config.ScalingFor("model.layers.1.mlp.down_proj"), 5.0 / std::sqrt(8.0));
  ASSERT_OK_AND_ASSIGN(LoraConfig all, ReadConfigText(R"({"r":4,"lora_alpha":8,"target_modules":"ALL-LINEAR"})"));
  EXPECT_TRUE(all.Targets("model.layers.0.mlp.gate_proj"));
  EXPECT_FALSE(all.Targets("lm_head"));
  ASSERT_OK_AND_ASSIGN(LoraConfig regex, ReadConfigText(R"({"r":4,"lora_alpha":8,"target_modules":".*\\.(q|v)_proj"})"));
  EXPECT_TRUE(regex.Targets("model.layers.5.self_attn.v_proj"));
  EXPECT_FALSE(regex.Targets("model.layers.5.self_attn.k_proj"));
  EXPECT_THAT(regex.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("target_modules")));
}

TEST(ReadPeftConfig, RefusalsNameTheField) {
  const std::vector<std::pair<std::string, std::string>> refused = {
      {R"({"r":4,"lora_alpha":8,"target_modules":["q_proj"],"use_dora":"yes"})", "use_dora"},
      {R"({"r":4,"lora_alpha":8,"target_modules":["q_proj"],"modules_to_save":["lm_head"]})", "modules_to_save"},
      {R"({"r":4,"lora_alpha":8,"target_modules":["q_proj"],"lora_bias":true})", "lora_bias"},
      {R"({"r":4,"lora_alpha":8,"target_modules":["q_proj"],"bias":"all"})", "bias"},
      {R"({"r":4,"lora_alpha":8,"target_modules":".*q_proj","layers_to_transform":[0]})", "layers_to_transform"},
      {R"({"r":4,"lora_alpha":8,"target_modules":["q_proj"],"layers_pattern":"layers"})", "layers_pattern"},
      {R"({"r":4,"lora_alpha":8,"target_modules":["q_proj"],"rank_pattern":{"q_proj(":2}})", "rank_pattern[\"q_proj(\"]"},
      {R"({"r":4,"lora_alpha":8,"target_modules":["q_proj"],"rank_pattern":{"q_proj":0}})", "rank_pattern"},
      {R"({"r":0,"lora_alpha":8,"target_modules":["q_proj"]})", "r must be"},
      {R"({"r":4,"lora_alpha":8})", "target_modules"},
  };
  for (const auto& [json, field] : refused)
    EXPECT_THAT(ReadConfigText(json), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field))) << json;
  EXPECT_THAT(ReadConfigText(R"({"r":4,"lora_alpha":8,"target_modules":["q_proj"],"modules_to_save":["x"]})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("training-methods issue")));
  ASSERT_OK_AND_ASSIGN(LoraConfig dora, ReadConfigText(R"({"r":4,"lora_alpha":8,"target_modules":["q_proj"],"use_dora":true})"));
  EXPECT_TRUE(dora.use_dora);  // read; the serving engine refuses it (dora_test)
}

TEST(PeftWeightsPath, BinOnlyIsRefusedWithAHint) {
  const std::string dir = qlorad::testing::MakeTempDir("peft_patterns_bin");
  ASSERT_OK(WriteFileAtomically(dir + "/adapter_model.bin", "not read"));
  EXPECT_THAT(PeftWeightsPath(dir), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("adapter_model.bin")));
  EXPECT_THAT(PeftWeightsPath(dir), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("safe_serialization=True")));
}

TEST(ParsePeftTensorKey, KeysPeftWrites) {
  ASSERT_OK_AND_ASSIGN(PeftTensorKey a, ParsePeftTensorKey("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_EQ(a.module, "model.layers.0.self_attn.q_proj");
  EXPECT_TRUE(a.is_a);
  ASSERT_OK_AND_ASSIGN(PeftTensorKey b,
                       ParsePeftTensorKey("base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"));
  EXPECT_EQ(b.module, "model.layers.0.self_attn.q_proj");
  EXPECT_FALSE(b.is_a);
  EXPECT_THAT(ParsePeftTensorKey("base_model.model.model.embed_tokens.lora_embedding_A"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora_embedding_A")));
  EXPECT_THAT(ParsePeftTensorKey("base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora_bias")));
  EXPECT_THAT(ParsePeftTensorKey("model.layers.0.self_attn.q_proj.weight"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a PEFT LoRA key")));
}

}  // namespace
}  // namespace qlorad
