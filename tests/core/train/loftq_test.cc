// The fitted initialisations (LoraConfig::init loftq / pissa, core/quant/lora_init.h) and
// gaussian. These tests check qlorad against itself and against closed forms (a PiSSA
// model reproduces the dense model; a full-rank split reproduces its matrix); the
// independent reference (nf4_reference.py codes, float64 SVD optima, served logits against
// llama_reference.py) is tests/reference/check_loftq.py (ctest loftq_reference).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <string>

#include "core/model/random_model.h"
#include "core/quant/lora_init.h"
#include "core/quant/nf4_model.h"
#include "core/train/fitted_base.h"
#include "core/train/lora_model.h"
#include "core/train/training_options.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

// A weight with a decaying spectrum plus noise, like a trained projection's.
at::Tensor StructuredWeight(int64_t out, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor u = at::randn({out, 8}), v = at::randn({8, in});
  return (at::matmul(u, v) * 0.05 + at::randn({out, in}) * 0.02).contiguous();
}

double ErrorNorm(const at::Tensor& w, const Quant4bitState& q, const LowRankFactors& f, double scaling) {
  const at::Tensor deq = Dequantize4bitTensor(q, at::kFloat).value();
  return (w - deq - at::matmul(f.b, f.a) * scaling).norm().item<double>();
}

double PlainQuantError(const at::Tensor& w) {
  const Quant4bitState q = Quantize4bitTensor(w, QuantOptions{}).value();
  return (w - Dequantize4bitTensor(q, at::kFloat).value()).norm().item<double>();
}

TEST(LoftqInit, OneRoundKeepsPlainQuantizationAndFitsItsError) {
  const at::Tensor w = StructuredWeight(96, 128, 1);
  ASSERT_OK_AND_ASSIGN(LoftqInit init, InitializeLoftq(w, 8, 2.0, QuantOptions{}, 1));
  const Quant4bitState plain = Quantize4bitTensor(w, QuantOptions{}).value();
  EXPECT_TRUE(at::equal(init.base.packed, plain.packed));
  EXPECT_EQ(init.factors.a.sizes(), (c10::IntArrayRef{8, 128}));
  EXPECT_EQ(init.factors.b.sizes(), (c10::IntArrayRef{96, 8}));
  EXPECT_LT(ErrorNorm(w, init.base, init.factors, 2.0), 0.9 * PlainQuantError(w));
}

TEST(LoftqInit, MoreRoundsDoNotIncreaseTheError) {
  const at::Tensor w = StructuredWeight(128, 192, 2);
  double previous = PlainQuantError(w);
  for (int64_t rounds : {1, 2, 4}) {
    ASSERT_OK_AND_ASSIGN(LoftqInit init, InitializeLoftq(w, 8, 1.0, QuantOptions{}, rounds));
    const double error = ErrorNorm(w, init.base, init.factors, 1.0);
    EXPECT_LE(error, previous * (1 + 1e-4)) << rounds << " rounds";
    previous = error;
  }
}

TEST(LoftqInit, FullRankSplitReproducesTheMatrix) {
  const at::Tensor m = at::randn({12, 7});
  ASSERT_OK_AND_ASSIGN(LowRankFactors f, TruncatedSvdFactors(m, 7, 0.5));
  EXPECT_TRUE(at::allclose(at::matmul(f.b, f.a) * 0.5, m, 1e-4, 1e-5));
  EXPECT_THAT(TruncatedSvdFactors(m, 8, 1.0).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("r = 8")));
}

TEST(PissaInit, ResidualPlusAdapterIsTheWeight) {
  const at::Tensor w = StructuredWeight(64, 80, 3);
  ASSERT_OK_AND_ASSIGN(PissaInit init, InitializePissa(w, 4, 4.0));
  EXPECT_TRUE(at::allclose(init.residual + at::matmul(init.factors.b, init.factors.a) * 4.0, w, 1e-5, 1e-6));
}

std::string WriteModel(const std::string& name) {
  const std::string dir = qlorad::testing::MakeTempDir(name);
  RandomModelOptions options;
  options.config = MakeConfig("llama", 2, 64, 4, 2, 128, 96, false);
  options.seed = 21;
  EXPECT_OK(WriteRandomModel(dir, options));
  return dir;
}

struct Loaded {
  LoadedModel model;
  std::shared_ptr<LoraModules> modules = std::make_shared<LoraModules>();
  std::shared_ptr<InitErrorTally> tally = std::make_shared<InitErrorTally>();
};

// `dir` with r=4 LoRA on every projection (init `init`), NF4 base when `quantize` (or
// when the directory is pre-quantized), or no LoRA at all when init is empty.
Loaded Load(const std::string& dir, bool quantize, const std::string& init) {
  Loaded out;
  at::manual_seed(7);
  LoadOptions options;
  // "none" still loads a pre-quantized (bitsandbytes) directory as 4-bit.
  auto base = MakeBaseLinearFactory(quantize ? "nf4" : "none", dir);
  EXPECT_OK(base.status());
  if (base.ok()) options.linear_factory = *base;
  if (!init.empty()) {
    LoraConfig config;
    config.r = 4;
    config.alpha = 8;
    config.init = init;
    options.linear_factory = MakeLoraLinearFactory(config, options.linear_factory, out.modules, out.tally);
  }
  auto loaded = LoadModel(dir, options);
  EXPECT_OK(loaded.status());
  if (loaded.ok()) out.model = std::move(loaded).value();
  return out;
}

at::Tensor Logits(Loaded& m) {
  at::NoGradGuard no_grad;
  ForwardInput input;
  input.tokens = at::tensor({3, 17, 42, 8, 95, 1, 60, 33}, at::kLong).unsqueeze(0);
  return m.model.model->forward(input);
}

double RelativeMax(const at::Tensor& x, const at::Tensor& ref) {
  return ((x - ref).abs().max() / ref.abs().max()).item<double>();
}

TEST(LoftqModel, PissaOnADenseBaseStartsAtTheBaseModel) {
  const std::string dir = WriteModel("loftq_pissa");
  Loaded dense = Load(dir, false, ""), pissa = Load(dir, false, "pissa");
  EXPECT_LT(RelativeMax(Logits(pissa), Logits(dense)), 1e-5);
  EXPECT_EQ(pissa.tally->modules, 14);
  EXPECT_GT(pissa.modules->at("model.layers.0.mlp.up_proj")->lora_B.abs().max().item<double>(), 0);
}

TEST(LoftqModel, LoftqStartsCloserToTheDenseModelThanPlainNf4) {
  const std::string dir = WriteModel("loftq_logits");
  Loaded dense = Load(dir, false, ""), plain = Load(dir, true, "kaiming"), loftq = Load(dir, true, "loftq");
  const at::Tensor reference = Logits(dense);
  EXPECT_LT(RelativeMax(Logits(loftq), reference), RelativeMax(Logits(plain), reference));
  EXPECT_EQ(loftq.tally->modules, 14);
  EXPECT_GT(loftq.tally->plain_quant_sq, loftq.tally->initialized_sq);
  const nlohmann::ordered_json record = InitErrorRecord(*loftq.tally);
  EXPECT_GT(record["error_reduction_factor"].get<double>(), 1.0);
}

TEST(LoftqModel, GaussianInitDrawsAWithStdOneOverR) {
  const std::string dir = WriteModel("loftq_gaussian");
  Loaded gaussian = Load(dir, false, "gaussian");
  const LoraLinear& layer = gaussian.modules->at("model.layers.1.mlp.down_proj");
  EXPECT_NEAR(layer->lora_A.std().item<double>(), 0.25, 0.02);
  EXPECT_EQ(layer->lora_B.abs().max().item<double>(), 0.0);
}

// The base written beside a LoftQ adapter, loaded like any pre-quantized checkpoint, with the
// adapter's factors, gives the training model's logits.
TEST(LoftqModel, WrittenBaseReloadsToTheSameModel) {
  const std::string dir = WriteModel("loftq_written");
  Loaded loftq = Load(dir, true, "loftq");
  LoraConfig config;
  config.r = 4;
  config.alpha = 8;
  config.init = "loftq";
  const std::string adapter_dir = qlorad::testing::MakeTempDir("loftq_written_adapter");
  ASSERT_OK_AND_ASSIGN(FittedBase fitted, WriteFittedBase(dir, adapter_dir, config, *loftq.modules, *loftq.tally));
  EXPECT_EQ(fitted.record["init"], "loftq");
  EXPECT_EQ(DeclaredQuantization(fitted.path), "nf4");
  Loaded reloaded = Load(fitted.path, false, "kaiming");
  ASSERT_EQ(reloaded.modules->size(), loftq.modules->size());
  {
    at::NoGradGuard no_grad;
    for (auto& [name, layer] : *reloaded.modules) {
      layer->lora_A.copy_(loftq.modules->at(name)->lora_A);
      layer->lora_B.copy_(loftq.modules->at(name)->lora_B);
    }
  }
  EXPECT_TRUE(at::equal(Logits(reloaded), Logits(loftq)));
  EXPECT_EQ(fitted.fingerprint, reloaded.model.fingerprint);
  EXPECT_NE(fitted.fingerprint, loftq.model.fingerprint);
  // A second write (a retried run) replaces the first.
  EXPECT_OK(WriteFittedBase(dir, adapter_dir, config, *loftq.modules, *loftq.tally).status());
}

TEST(LoftqOptions, InvalidSettingsNameTheField) {
  TrainingOptions options;
  options.dataset_id = "d";
  options.lora.init = "loftq";
  options.quantize = "none";
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora.init: loftq")));
  options.quantize = "nf4";
  EXPECT_OK(options.Validate());
  options.lora.init = "olora";
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora.init: 'olora'")));
  options.lora.init = "loftq";
  options.lora.loftq_iterations = 0;
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora.loftq_iterations")));
}

TEST(LoftqOptions, JsonRoundTripAndDefaults) {
  TrainingOptions options;
  options.dataset_id = "d";
  options.lora.init = "pissa";
  options.lora.loftq_iterations = 3;
  ASSERT_OK_AND_ASSIGN(TrainingOptions back, TrainingOptionsFromJson(TrainingOptionsToJson(options)));
  EXPECT_EQ(back.lora.init, "pissa");
  EXPECT_EQ(back.lora.loftq_iterations, 3);
  ASSERT_OK_AND_ASSIGN(TrainingOptions old, TrainingOptionsFromJson({{"dataset_id", "d"}, {"lora", {{"r", 8}}}}));
  EXPECT_EQ(old.lora.init, "kaiming");  // a stored job row from before the field
  EXPECT_EQ(old.lora.loftq_iterations, 1);
}

}  // namespace
}  // namespace qlorad
