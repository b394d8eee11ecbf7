// DoRA (LoraConfig::use_dora, lora_linear.h). Gradients against central finite
// differences in float64; the layer against PEFT's formula written out here; merge, PEFT
// save/load and the serving loader's refusal without access to the base. Mixed DoRA +
// LoRA + base batches in the serving engine: serving_batching_test. The float64 reference of a trained adapter's
// served logits is tests/reference/check_dora.py (ctest dora_reference).
//
// PEFT detaches the row norm n = ‖W + s·BA‖ (the DoRA paper's memory-saving choice), so the
// gradients of A and B are those of the function with n held at its current value: the
// finite differences below are taken of that function. The magnitude m does not enter n,
// so its gradient is checked against differences of the layer itself.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <string>

#include "core/adapter/peft_config.h"
#include "core/adapter/peft_weights.h"
#include "core/model/random_model.h"
#include "core/quant/lora_linear.h"
#include "core/quant/nf4_model.h"
#include "core/serve/serving_adapter.h"
#include "core/train/lora_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int64_t kIn = 12, kOut = 10, kRank = 3;
constexpr double kAlpha = 6;

struct Fixture {
  at::Tensor w, bias, x, probe;
  LoraLinear layer{nullptr};
};

// A float64 DoRA layer with non-zero B and a magnitude moved away from its init.
Fixture MakeFixture(bool with_bias) {
  at::manual_seed(3);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  Fixture f;
  f.w = at::randn({kOut, kIn}, f64) * 0.3;
  if (with_bias) f.bias = at::randn({kOut}, f64);
  f.x = at::randn({2, 5, kIn}, f64);
  f.probe = at::randn({2, 5, kOut}, f64);
  LoraLinearOptions options(kRank, kAlpha);
  options.dtype(at::kDouble).use_dora(true);
  std::optional<at::Tensor> bias;
  if (with_bias) bias = f.bias;
  f.layer = LoraLinearImpl::Create(options, f.w, bias).value();
  at::NoGradGuard no_grad;
  f.layer->lora_B.normal_(0, 0.5);
  f.layer->lora_magnitude.mul_(at::rand({kOut}, f64) + 0.5);
  return f;
}

// PEFT's DoRA forward with the row norm `n` given (held constant).
at::Tensor Reference(const Fixture& f, const at::Tensor& a, const at::Tensor& b, const at::Tensor& m,
                     const at::Tensor& n) {
  const double s = kAlpha / kRank;
  const at::Tensor base = at::matmul(f.x, f.w.t());
  const at::Tensor gain = m / n;
  at::Tensor y = base + (gain - 1) * base + gain * at::matmul(at::matmul(f.x, a.t()), b.t()) * s;
  return f.bias.defined() ? y + f.bias : y;
}

at::Tensor RowNorm(const at::Tensor& w, const at::Tensor& a, const at::Tensor& b) {
  return (w + at::matmul(b, a) * (kAlpha / kRank)).norm(2, {1});
}

TEST(DoraLinear, ForwardIsPeftsFormula) {
  for (bool with_bias : {false, true}) {
    Fixture f = MakeFixture(with_bias);
    at::NoGradGuard no_grad;
    const at::Tensor a = f.layer->lora_A, b = f.layer->lora_B;
    EXPECT_TRUE(at::allclose(f.layer->DoraWeightNorm(), RowNorm(f.w, a, b), 1e-12, 1e-12));
    const at::Tensor expected = Reference(f, a, b, f.layer->lora_magnitude, RowNorm(f.w, a, b));
    EXPECT_TRUE(at::allclose(f.layer->forward(f.x), expected, 1e-12, 1e-12)) << "bias " << with_bias;
  }
}

TEST(DoraLinear, GradientsMatchCentralDifferences) {
  Fixture f = MakeFixture(true);
  at::Tensor loss = (f.layer->forward(f.x) * f.probe).sum();
  loss.backward();
  at::NoGradGuard no_grad;
  const at::Tensor n = f.layer->DoraWeightNorm();
  const double eps = 1e-6;
  auto check = [&](at::Tensor& param, const at::Tensor& grad, bool through_layer, const char* what) {
    double worst = 0;
    for (int64_t i = 0; i < param.numel(); ++i) {
      const double saved = param.view(-1)[i].item<double>();
      auto value = [&](double v) {
        param.view(-1)[i] = v;
        const at::Tensor y = through_layer ? f.layer->forward(f.x)
                                           : Reference(f, f.layer->lora_A, f.layer->lora_B, f.layer->lora_magnitude, n);
        return (y * f.probe).sum().item<double>();
      };
      const double numeric = (value(saved + eps) - value(saved - eps)) / (2 * eps);
      param.view(-1)[i] = saved;
      worst = std::max(worst, std::abs(numeric - grad.view(-1)[i].item<double>()) / (std::abs(numeric) + 1e-3));
    }
    EXPECT_LT(worst, 1e-6) << what;
  };
  check(f.layer->lora_A, f.layer->lora_A.grad(), false, "lora_A");
  check(f.layer->lora_B, f.layer->lora_B.grad(), false, "lora_B");
  check(f.layer->lora_magnitude, f.layer->lora_magnitude.grad(), true, "magnitude");
}

TEST(DoraLinear, StartsAtTheBaseAndMergesToTheSameOutput) {
  Fixture f = MakeFixture(false);
  at::NoGradGuard no_grad;
  LoraLinearOptions options(kRank, kAlpha);
  options.dtype(at::kDouble).use_dora(true);
  LoraLinear fresh = LoraLinearImpl::Create(options, f.w, std::nullopt).value();
  EXPECT_TRUE(at::allclose(fresh->lora_magnitude, f.w.norm(2, {1}), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(fresh->forward(f.x), at::matmul(f.x, f.w.t()), 1e-12, 1e-12));
  const at::Tensor merged = f.layer->Merge(f.w).to(at::kDouble);
  EXPECT_TRUE(at::allclose(at::matmul(f.x, merged.t()), f.layer->forward(f.x), 1e-5, 1e-5));
}

TEST(DoraLinear, Nf4BaseNormIsTheDequantizedWeightsNorm) {
  at::manual_seed(4);
  const at::Tensor w = at::randn({64, 128}) * 0.1;
  QuantizedLinear q = QuantizedLinearImpl::FromWeight(w, std::nullopt, {}).value();
  LoraLinearOptions options(8, 16);
  options.use_dora(true);
  LoraLinear layer = LoraLinearImpl::Create(options, q).value();
  at::NoGradGuard no_grad;
  layer->lora_B.normal_(0, 0.2);
  const at::Tensor deq = q->DequantizedWeight(at::kFloat).value();
  const at::Tensor expected = (deq + at::matmul(layer->lora_B, layer->lora_A) * 2.0).norm(2, {1});
  EXPECT_TRUE(at::allclose(layer->DoraWeightNorm(), expected, 1e-5, 1e-5));
}

std::string WriteModel(const std::string& name) {
  const std::string dir = qlorad::testing::MakeTempDir(name);
  RandomModelOptions options;
  options.config = MakeConfig("qwen2", 2, 64, 4, 2, 128, 96, false);  // q/k/v biases
  options.seed = 8;
  EXPECT_OK(WriteRandomModel(dir, options));
  return dir;
}

struct DoraModel {
  LoadedModel model;
  std::shared_ptr<LoraModules> modules = std::make_shared<LoraModules>();
};

DoraModel LoadDora(const std::string& dir, const LoraConfig& config) {
  DoraModel out;
  LoadOptions options;
  options.linear_factory = MakeLoraLinearFactory(config, MakeQuantizedLinearFactory(QuantOptions{}), out.modules);
  auto loaded = LoadModel(dir, options);
  EXPECT_OK(loaded.status());
  if (loaded.ok()) out.model = std::move(loaded).value();
  return out;
}

at::Tensor Logits(DoraModel& m) {
  at::NoGradGuard no_grad;
  ForwardInput input;
  input.tokens = at::tensor({3, 17, 42, 8, 95, 1}, at::kLong).unsqueeze(0);
  return m.model.model->forward(input);
}

TEST(DoraAdapter, PeftLayoutRoundTripAndServingRefusal) {
  const std::string dir = WriteModel("dora_roundtrip");
  LoraConfig config;
  config.r = 4;
  config.alpha = 8;
  config.use_dora = true;
  DoraModel trained = LoadDora(dir, config);
  {
    at::NoGradGuard no_grad;
    for (auto& [name, layer] : *trained.modules) {
      layer->lora_B.normal_(0, 0.1);
      layer->lora_magnitude.mul_(1.1);
    }
  }
  const std::string adapter = qlorad::testing::MakeTempDir("dora_adapter");
  ASSERT_OK(SavePeftAdapter(adapter, config, *trained.modules, dir, {}));
  ASSERT_OK_AND_ASSIGN(LoraConfig read, ReadPeftConfig(adapter));
  EXPECT_TRUE(read.use_dora);
  DoraModel loaded = LoadDora(dir, read);
  ASSERT_OK(LoadPeftWeights(adapter, *loaded.modules));
  EXPECT_TRUE(at::equal(Logits(loaded), Logits(trained)));

  LoraConfig plain = read;
  plain.use_dora = false;
  DoraModel without = LoadDora(dir, plain);
  EXPECT_THAT(LoadPeftWeights(adapter, *without.modules),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not set use_dora")));

  serve::BaseModuleShapes shapes;
  EXPECT_THAT(serve::LoadServingAdapter(adapter, "a", shapes, {}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("use_dora")));
}

}  // namespace
}  // namespace qlorad
