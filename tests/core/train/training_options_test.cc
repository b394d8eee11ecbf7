// TrainingOptions: the job spec's one JSON mapping (stored rows of earlier versions
// still read), defaults, and validation errors that name the field as the API does.
#include "core/train/training_options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

// A spec_json row as SubmitJob wrote it before TrainingOptions existed (keys sorted, as stored).
constexpr char kStoredRow[] = R"({"adapter_name":"imdb","base_model":"tiny","dataset_id":"ds-1",
  "lora":{"alpha":8.0,"alpha_pattern":{},"dropout":0.1,"r":4,"rank_pattern":{"q_proj":8},"target_modules":["q_proj","v_proj"],
          "use_rslora":true},
  "quantize":"fp4",
  "trainer":{"batch_size":8,"early_stopping_min_delta":0.0,"early_stopping_patience":0,"epochs":2,"eval_every_steps":0,
             "eval_fraction":0.0,"gradient_accumulation":2,"gradient_checkpointing":true,"learning_rate":0.001,
             "max_grad_norm":0.5,"max_seq_len":128,"schedule":"linear","seed":7,"warmup_ratio":0.1,"weight_decay":0.01}})";

TEST(TrainingOptionsTest, ReadsAStoredRowOfEarlierVersions) {
  ASSERT_OK_AND_ASSIGN(TrainingOptions o, TrainingOptionsFromJson(nlohmann::json::parse(kStoredRow)));
  EXPECT_EQ(o.dataset_id, "ds-1");
  EXPECT_EQ(o.quantize, "fp4");
  EXPECT_EQ(o.lora.r, 4);
  EXPECT_EQ(o.lora.alpha, 8.0);
  EXPECT_EQ(o.lora.dropout, 0.1);
  EXPECT_TRUE(o.lora.use_rslora);
  EXPECT_EQ(o.lora.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(o.lora.rank_pattern.at("q_proj"), 8);
  EXPECT_EQ(o.trainer.epochs, 2);
  EXPECT_EQ(o.trainer.batch_size, 8);
  EXPECT_EQ(o.trainer.gradient_accumulation, 2);
  EXPECT_EQ(o.trainer.learning_rate, 0.001);
  EXPECT_EQ(o.trainer.schedule, "linear");
  EXPECT_EQ(o.trainer.seed, 7u);
  EXPECT_TRUE(o.trainer.gradient_checkpointing);
  EXPECT_EQ(o.trainer.max_seq_len, 128);
  EXPECT_EQ(o.trainer.loraplus_lr_ratio, 1.0);  // written before LoRA+: plain LoRA
  EXPECT_FALSE(o.trainer.packing);               // written before packing: one example per row
  EXPECT_EQ(o.lora.init, "kaiming");             // written before the init option: PEFT's default
  EXPECT_EQ(o.method, "sft");                    // written before DPO: supervised
}

TEST(TrainingOptionsTest, WritesTheStoredKeysAndRoundTrips) {
  const nlohmann::json row = nlohmann::json::parse(kStoredRow);
  ASSERT_OK_AND_ASSIGN(TrainingOptions o, TrainingOptionsFromJson(row));
  const nlohmann::json written = TrainingOptionsToJson(o);
  // Every key of the stored format, with the same values (SubmitJob adds base_model and adapter_name).
  nlohmann::json expected = row;
  expected.erase("base_model");
  expected.erase("adapter_name");
  expected["trainer"]["loraplus_lr_ratio"] = 1.0;  // keys added since: a row without them reads as their default
  expected["trainer"]["packing"] = false;
  expected["lora"]["init"] = "kaiming";
  expected["lora"]["loftq_iterations"] = 1;
  expected["lora"]["use_dora"] = false;
  expected["method"] = "sft";
  expected["trainer"]["dpo_beta"] = 0.1;
  expected["trainer"]["checkpoint_keep"] = "none";
  EXPECT_EQ(written, expected) << written.dump();
  ASSERT_OK_AND_ASSIGN(TrainingOptions again, TrainingOptionsFromJson(written));
  EXPECT_EQ(TrainingOptionsToJson(again), written);
  // A set value survives the round trip, and an unknown one is refused by name.
  o.trainer.checkpoint_keep = "attention";
  ASSERT_OK_AND_ASSIGN(TrainingOptions kept, TrainingOptionsFromJson(TrainingOptionsToJson(o)));
  EXPECT_EQ(kept.trainer.checkpoint_keep, "attention");
  o.trainer.checkpoint_keep = "mlp";
  EXPECT_NE(o.Validate().message().find("hyperparameters.checkpoint_keep"), std::string::npos) << o.Validate();
}

TEST(TrainingOptionsTest, AbsentKeysKeepTheDefaultsAndAlphaFollowsR) {
  ASSERT_OK_AND_ASSIGN(TrainingOptions o, TrainingOptionsFromJson({{"dataset_id", "d"}, {"lora", {{"r", 8}}}}));
  EXPECT_EQ(o.quantize, "nf4");
  EXPECT_EQ(o.lora.alpha, DefaultLoraAlpha(8));
  EXPECT_EQ(o.trainer.epochs, TrainerOptions().epochs);
  EXPECT_EQ(o.trainer.learning_rate, TrainerOptions().learning_rate);
  EXPECT_EQ(o.lora.target_modules, LoraConfig().target_modules);
}

TEST(TrainingOptionsTest, ErrorsNameTheField) {
  TrainingOptions o;
  o.dataset_id = "d";
  EXPECT_OK(o.Validate());
  o.trainer.learning_rate = -1;
  EXPECT_THAT(o.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hyperparameters.learning_rate: ")));
  o.trainer = {};
  o.lora.r = 0;
  EXPECT_THAT(o.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora.r: ")));
  o.lora = {};
  o.lora.target_modules = {"qq_proj"};
  EXPECT_THAT(o.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora.target_modules: 'qq_proj'")));
  o.lora = {};
  o.quantize = "nf5";
  EXPECT_THAT(o.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("quantize: 'nf5'")));
  o.quantize = "none";
  o.dataset_id = "";
  EXPECT_THAT(o.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dataset_id: ")));
  EXPECT_THAT(TrainingOptionsFromJson({{"dataset_id", "d"}, {"trainer", {{"epochs", "three"}}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trainer.epochs: wrong type")));
  EXPECT_THAT(TrainingOptionsFromJson({{"dataset_id", "d"}, {"lora", {{"alpha", -2}}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora.alpha: must be positive")));
}

}  // namespace
}  // namespace qlorad
