// LoraLinear over a quantized and a dense base: forward/backward against autograd
// through an explicitly dequantized fp32 weight, B = 0 identity, merge/unmerge, init.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include <ATen/ATen.h>

#include "core/quant/lora_linear.h"
#include "core/quant/quantized_linear.h"
#include "tests/testing/status_matchers.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

double MaxRelError(const at::Tensor& got, const at::Tensor& want) {
  const double scale = std::max(1e-30, want.abs().max().item<double>());
  return (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>() / scale;
}

struct Fixture {
  at::Tensor w, bias;
  QuantizedLinear q{nullptr};
  LoraLinear lora{nullptr};
};

Fixture MakeQuantized(int64_t out, int64_t in, const LoraLinearOptions& options) {
  Fixture f;
  f.w = at::randn({out, in});
  f.bias = at::randn({out});
  f.q = *QuantizedLinearImpl::FromWeight(f.w, f.bias);
  f.lora = *LoraLinearImpl::Create(options, f.q);
  return f;
}

// Forward + backward of the layer against plain autograd with W = dequant(W) in fp32.
void CheckAgainstAutograd(LoraLinear& lora, const at::Tensor& wd, const at::Tensor& bias,
                          const at::Tensor& x_in) {
  {
    at::NoGradGuard g;
    lora->lora_B.normal_();  // make the adapter path non-trivial
  }
  const at::Tensor x = x_in.clone().requires_grad_(true);
  const at::Tensor y = lora(x);
  const at::Tensor gy = at::randn(y.sizes());
  (y * gy).sum().backward();

  const at::Tensor xr = x_in.clone().requires_grad_(true);
  const at::Tensor ar = lora->lora_A.detach().clone().requires_grad_(true);
  const at::Tensor br = lora->lora_B.detach().clone().requires_grad_(true);
  at::Tensor yr = at::linear(xr, wd, bias) + at::linear(at::linear(xr, ar), br) * lora->scaling();
  (yr * gy).sum().backward();

  EXPECT_LT(MaxRelError(y, yr), 1e-5);
  EXPECT_LT(MaxRelError(x.grad(), xr.grad()), 1e-5);
  EXPECT_LT(MaxRelError(lora->lora_A.grad(), ar.grad()), 1e-5);
  EXPECT_LT(MaxRelError(lora->lora_B.grad(), br.grad()), 1e-5);
}

TEST(LoraLinearTest, QuantizedBaseForwardBackwardMatchAutograd) {
  for (int64_t rows : {1, 7, 40}) {  // fused kernel and tiled dequant paths
    Fixture f = MakeQuantized(48, 128, LoraLinearOptions(8, 16));
    ASSERT_OK_AND_ASSIGN(at::Tensor wd, f.q->DequantizedWeight());
    CheckAgainstAutograd(f.lora, wd, f.bias, at::randn({rows, 128}));
  }
  Fixture f = MakeQuantized(32, 64, LoraLinearOptions(4, 8).use_rslora(true));
  ASSERT_OK_AND_ASSIGN(at::Tensor wd, f.q->DequantizedWeight());
  CheckAgainstAutograd(f.lora, wd, f.bias, at::randn({2, 3, 64}));  // 3-D input
}

TEST(LoraLinearTest, DenseBaseForwardBackwardMatchAutograd) {
  const at::Tensor w = at::randn({24, 40}), bias = at::randn({24});
  ASSERT_OK_AND_ASSIGN(LoraLinear lora, LoraLinearImpl::Create(LoraLinearOptions(4, 4), w, bias));
  CheckAgainstAutograd(lora, w, bias, at::randn({5, 40}));
  EXPECT_FALSE(w.grad().defined());  // the base gets no gradient
}

TEST(LoraLinearTest, ZeroBEqualsBaseExactly) {
  Fixture f = MakeQuantized(48, 128, LoraLinearOptions(8, 16).dropout(0.5));
  f.lora->train();  // dropout active on the LoRA input only
  for (int64_t rows : {1, 30}) {
    const at::Tensor x = at::randn({rows, 128});
    EXPECT_TRUE(at::equal(f.lora(x), f.q(x))) << rows;
  }
}

TEST(LoraLinearTest, MergeThenUnmergeRestoresTheBase) {
  Fixture f = MakeQuantized(64, 96, LoraLinearOptions(16, 32));
  {
    at::NoGradGuard g;
    f.lora->lora_B.normal_();
  }
  ASSERT_OK_AND_ASSIGN(at::Tensor base, f.lora->BaseWeight());
  const at::Tensor before = base.clone();
  const at::Tensor merged = f.lora->Merge(base);
  EXPECT_TRUE(at::equal(base, before));  // the base copy is not modified
  EXPECT_GT((merged - base).abs().max().item<float>(), 1e-3);
  const at::Tensor restored = f.lora->Unmerge(merged);
  // Within fp32 rounding of (w + d) - d: |error| <= ulp(|w| + |d|).
  const at::Tensor bound = (base.abs() + f.lora->DeltaWeight().abs()) * 1.2e-7f;
  EXPECT_TRUE((restored - base).abs().le(bound).all().item<bool>());
  // A merged dense layer reproduces the adapter's output.
  {
    f.lora->eval();
    const at::Tensor x = at::randn({3, 96});
    const at::Tensor y_merged = at::linear(x, merged, f.bias);
    EXPECT_LT(MaxRelError(f.lora(x), y_merged), 1e-5);
  }
}

TEST(LoraLinearTest, InitAndScaling) {
  Fixture f = MakeQuantized(32, 256, LoraLinearOptions(8, 16));
  EXPECT_EQ(f.lora->lora_A.sizes(), (std::vector<int64_t>{8, 256}));
  EXPECT_EQ(f.lora->lora_B.sizes(), (std::vector<int64_t>{32, 8}));
  EXPECT_TRUE(f.lora->lora_B.eq(0).all().item<bool>());
  // kaiming_uniform(a=√5): U(-1/√in, 1/√in).
  const float bound = 1.0f / std::sqrt(256.0f);
  EXPECT_LE(f.lora->lora_A.abs().max().item<float>(), bound);
  EXPECT_GT(f.lora->lora_A.abs().max().item<float>(), 0.9f * bound);
  EXPECT_DOUBLE_EQ(f.lora->scaling(), 2.0);
  Fixture rs = MakeQuantized(32, 64, LoraLinearOptions(16, 32).use_rslora(true));
  EXPECT_DOUBLE_EQ(rs.lora->scaling(), 8.0);
  // Only the adapter is trainable.
  std::vector<std::string> names;
  for (const auto& p : f.lora->named_parameters()) names.push_back(p.key());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("lora_A", "lora_B"));
}

TEST(LoraLinearTest, RejectsBadOptions) {
  ASSERT_OK_AND_ASSIGN(QuantizedLinear q, QuantizedLinearImpl::FromWeight(at::randn({8, 64}), std::nullopt));
  EXPECT_THAT(LoraLinearImpl::Create(LoraLinearOptions(0, 16), q),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank")));
  EXPECT_THAT(LoraLinearImpl::Create(LoraLinearOptions(4, -1), q),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora_alpha")));
  EXPECT_THAT(LoraLinearImpl::Create(LoraLinearOptions(4, 8).dropout(1.0), q),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora_dropout")));
  EXPECT_THAT(LoraLinearImpl::Create(LoraLinearOptions(4, 8), at::randn({8}), std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[out, in]")));
}

}  // namespace
}  // namespace qlorad
