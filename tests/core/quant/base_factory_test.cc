// The one place a `quantize` setting becomes the base layers' factory: explicit
// settings, a pre-quantized model's declared quantization, and the errors.
#include <fstream>

#include "core/model/random_model.h"
#include "core/quant/nf4_model.h"
#include "core/quant/quantize_setting.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

std::string TinyModel(const std::string& name) {
  const std::string dir = qlorad::testing::MakeTempDir(name);
  RandomModelOptions options;
  options.config = MakeConfig("llama", 1, 64, 4, 2, 128, 40, false);
  options.seed = 3;
  EXPECT_OK(WriteRandomModel(dir, options));
  return dir;
}

// Adds a bitsandbytes quantization_config block declaring `quant_type` to config.json.
void DeclareBnb4bit(const std::string& dir, const std::string& quant_type) {
  nlohmann::json config;
  std::ifstream(dir + "/config.json") >> config;
  config["quantization_config"] = {{"quant_method", "bitsandbytes"},
                                   {"load_in_4bit", true},
                                   {"bnb_4bit_quant_type", quant_type}};
  std::ofstream(dir + "/config.json") << config.dump(2);
}

// The 4-bit type of the first quantized layer of a model loaded with `factory`, or
// nullopt when its layers are dense.
std::optional<kernels::QuantType> LoadedType(const std::string& dir, const LinearFactory& factory) {
  LoadOptions options;
  options.linear_factory = factory;
  auto loaded = LoadModel(dir, options);
  EXPECT_OK(loaded.status());
  if (!loaded.ok()) return std::nullopt;
  for (const auto& module : loaded->model->modules(/*include_self=*/false)) {
    if (auto* layer = dynamic_cast<QuantizedLinearLayer*>(module.get())) {
      return layer->layer()->state().quant_type;
    }
  }
  return std::nullopt;
}

TEST(QuantizeSettingTest, ParsesTheThreeSettingsAndNamesTheFieldOtherwise) {
  EXPECT_EQ(*ParseQuantizeSetting("none"), std::nullopt);
  EXPECT_EQ(*ParseQuantizeSetting("nf4"), kernels::QuantType::kNF4);
  EXPECT_EQ(*ParseQuantizeSetting("fp4"), kernels::QuantType::kFP4);
  EXPECT_THAT(ParseQuantizeSetting("int8", "spec.quantize"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("spec.quantize: 'int8' is not none, nf4 or fp4")));
  EXPECT_THAT(ParseQuantizeSetting("NF4"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'NF4'")));
  EXPECT_EQ(*ParseQuantType("fp4", "--quant-type"), kernels::QuantType::kFP4);
  EXPECT_THAT(ParseQuantType("none", "--quant-type"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--quant-type: 'none' is not nf4 or fp4")));
}

TEST(BaseLinearFactoryTest, ExplicitSettingsChooseTheLayers) {
  const std::string dir = TinyModel("base_factory_plain");
  for (const auto& [setting, want] : std::vector<std::pair<std::string, std::optional<kernels::QuantType>>>{
           {"none", std::nullopt}, {"nf4", kernels::QuantType::kNF4}, {"fp4", kernels::QuantType::kFP4}}) {
    SCOPED_TRACE(setting);
    bool quantized = !want.has_value();  // must be overwritten
    auto factory = MakeBaseLinearFactory(setting, dir, {}, &quantized);
    ASSERT_OK(factory.status());
    EXPECT_EQ(quantized, want.has_value());
    EXPECT_EQ(LoadedType(dir, *factory), want);
  }
  EXPECT_THAT(MakeBaseLinearFactory("q4_0", dir), StatusIs(absl::StatusCode::kInvalidArgument,
                                                           HasSubstr("quantize: 'q4_0' is not none, nf4 or fp4")));
}

TEST(BaseLinearFactoryTest, NoneFollowsTheModelsDeclaredQuantization) {
  const std::string dir = TinyModel("base_factory_declared");
  DeclareBnb4bit(dir, "fp4");
  bool quantized = false;
  auto factory = MakeBaseLinearFactory("none", dir, {}, &quantized);
  ASSERT_OK(factory.status());
  EXPECT_TRUE(quantized);
  EXPECT_EQ(LoadedType(dir, *factory), kernels::QuantType::kFP4);
  // An explicit setting wins over the declaration.
  EXPECT_EQ(LoadedType(dir, *MakeBaseLinearFactory("nf4", dir)), kernels::QuantType::kNF4);

  DeclareBnb4bit(dir, "int3");
  EXPECT_THAT(MakeBaseLinearFactory("none", dir),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("config.json bnb_4bit_quant_type: 'int3' is not nf4 or fp4")));
}

}  // namespace
}  // namespace qlorad
