// QuantizedLinear and the 4-bit tensor state: construction errors, dequantization,
// fused vs tiled forward, custom-autograd backward, storage bytes per parameter.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/quant/quant4bit_matmul.h"
#include "core/quant/quant_state.h"
#include "core/quant/quantized_linear.h"
#include "kernels/quant4bit.h"
#include "kernels/quant_tables.h"
#include "tests/testing/status_matchers.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

double MaxRelError(const at::Tensor& got, const at::Tensor& want) {
  const double scale = std::max(1e-30, want.abs().max().item<double>());
  return (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>() / scale;
}

TEST(Quant4bitStateTest, RejectsBadInput) {
  EXPECT_THAT(Quantize4bitTensor(at::empty({0, 4}), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(Quantize4bitTensor(at::ones({4, 64}, at::kInt), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype Int")));
  EXPECT_THAT(Quantize4bitTensor(at::randn({64, 8}).t(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not contiguous")));
  QuantOptions bad;
  bad.blocksize = 96;
  EXPECT_THAT(Quantize4bitTensor(at::randn({4, 96}), bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("power of two")));
  EXPECT_THAT(QuantizedLinearImpl::FromWeight(at::randn({64}), std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2-D")));
  EXPECT_THAT(QuantizedLinearImpl::FromWeight(at::randn({8, 64}), at::randn({7})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bias of shape")));
}

TEST(Quant4bitStateTest, FromStateValidatesSizesAndCodeBook) {
  ASSERT_OK_AND_ASSIGN(Quant4bitState s, Quantize4bitTensor(at::randn({16, 64}), {}));
  Quant4bitState truncated = s;
  truncated.packed = s.packed.narrow(0, 0, 100).clone();
  EXPECT_THAT(QuantizedLinearImpl::FromState(truncated, std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight (packed) has 100")));
  Quant4bitState wrong_map = s;
  wrong_map.quant_type = kernels::QuantType::kFP4;
  EXPECT_THAT(QuantizedLinearImpl::FromState(wrong_map, std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("code book")));
  Quant4bitState wrong_dtype = s;
  wrong_dtype.nested_absmax = s.nested_absmax.to(at::kHalf);
  EXPECT_THAT(QuantizedLinearImpl::FromState(wrong_dtype, std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nested_absmax has dtype")));
  EXPECT_OK(QuantizedLinearImpl::FromState(s, std::nullopt).status());
}

TEST(Quant4bitStateTest, Bf16AndFp16QuantizeLikeTheirFp32Values) {
  const at::Tensor w = at::randn({24, 128}).to(at::kBFloat16);
  QuantOptions plain;
  plain.double_quant = false;
  ASSERT_OK_AND_ASSIGN(Quant4bitState a, Quantize4bitTensor(w, plain));
  ASSERT_OK_AND_ASSIGN(Quant4bitState b, Quantize4bitTensor(w.to(at::kFloat), plain));
  EXPECT_TRUE(at::equal(a.packed, b.packed));
  EXPECT_TRUE(at::equal(a.absmax, b.absmax));
  EXPECT_EQ(a.dtype, at::kBFloat16);
  ASSERT_OK_AND_ASSIGN(Quant4bitState h, Quantize4bitTensor(w.to(at::kHalf), plain));
  EXPECT_TRUE(at::equal(h.packed, b.packed));
}

TEST(Quant4bitStateTest, DequantizeMatchesCodeTimesAbsmaxAndKeepsShape) {
  const at::Tensor w = at::randn({3, 5, 67});  // odd total size, tail block
  QuantOptions plain;
  plain.double_quant = false;
  ASSERT_OK_AND_ASSIGN(Quant4bitState s, Quantize4bitTensor(w, plain));
  ASSERT_OK_AND_ASSIGN(at::Tensor d, Dequantize4bitTensor(s, at::kFloat));
  EXPECT_EQ(d.sizes(), w.sizes());
  const at::Tensor p = s.packed.to(at::kLong);
  const at::Tensor idx = at::stack({p.div(16, "floor"), p.remainder(16)}, 1).reshape(-1).narrow(0, 0, w.numel());
  const at::Tensor code = at::from_blob(const_cast<float*>(kernels::kNf4Code), {16}, at::kFloat);
  const at::Tensor want = code.index({idx}) * s.absmax.repeat_interleave(64).narrow(0, 0, w.numel());
  EXPECT_TRUE(at::equal(d.reshape(-1), want));
  ASSERT_OK_AND_ASSIGN(at::Tensor bf, Dequantize4bitTensor(s, at::kBFloat16));
  EXPECT_TRUE(at::equal(bf, d.to(at::kBFloat16)));
}

TEST(QuantizedLinearTest, ForwardFusedAndTiledMatchDequantizedMatmul) {
  const at::Tensor w = at::randn({96, 192});
  const at::Tensor bias = at::randn({96});
  ASSERT_OK_AND_ASSIGN(QuantizedLinear q, QuantizedLinearImpl::FromWeight(w, bias));
  ASSERT_OK_AND_ASSIGN(at::Tensor wd, q->DequantizedWeight());
  for (int64_t rows : {1, 3, 8, 16, 17, 64}) {  // <= 16: fused kernel; more: dequant + matmul
    const at::Tensor x = at::randn({rows, 192});
    const at::Tensor want = at::matmul(x.to(at::kDouble), wd.to(at::kDouble).t()) + bias.to(at::kDouble);
    EXPECT_LT(MaxRelError(q(x), want), 1e-5) << rows;
  }
  const at::Tensor x3 = at::randn({2, 5, 192});
  EXPECT_EQ(q(x3).sizes(), (std::vector<int64_t>{2, 5, 96}));
  EXPECT_THROW(q(at::randn({2, 191})), c10::Error);
}

TEST(QuantizedLinearTest, TiledPathCoversManyTiles) {
  // in = 4096 and > kTileElements/in rows per tile forces several tiles.
  const int64_t out = kTileElements / 4096 * 2 + 3, in = 4096;
  ASSERT_OK_AND_ASSIGN(QuantizedLinear q, QuantizedLinearImpl::FromWeight(at::randn({out, in}), std::nullopt));
  ASSERT_OK_AND_ASSIGN(at::Tensor wd, q->DequantizedWeight());
  const at::Tensor x = at::randn({20, in});
  EXPECT_LT(MaxRelError(q(x), at::matmul(x, wd.t())), 1e-5);
  const at::Tensor dy = at::randn({20, out});
  ASSERT_OK_AND_ASSIGN(at::Tensor dx, Quant4bitMatmulTransposed(q->state(), dy));
  EXPECT_LT(MaxRelError(dx, at::matmul(dy, wd)), 1e-5);
}

TEST(QuantizedLinearTest, BackwardReachesInputOnly) {
  ASSERT_OK_AND_ASSIGN(QuantizedLinear q,
                       QuantizedLinearImpl::FromWeight(at::randn({40, 64}), at::randn({40})));
  EXPECT_TRUE(q->parameters().empty());
  ASSERT_OK_AND_ASSIGN(at::Tensor wd, q->DequantizedWeight());
  for (int64_t rows : {2, 33}) {
    const at::Tensor x = at::randn({rows, 64}).requires_grad_(true);
    const at::Tensor g = at::randn({rows, 40});
    (q(x) * g).sum().backward();
    EXPECT_LT(MaxRelError(x.grad(), at::matmul(g, wd)), 1e-5) << rows;
  }
}

TEST(QuantizedLinearTest, StorageIsAtMostPoint52BytesPerParameter) {
  const int64_t out = 1024, in = 4096;
  ASSERT_OK_AND_ASSIGN(QuantizedLinear q, QuantizedLinearImpl::FromWeight(at::randn({out, in}), std::nullopt));
  int64_t bytes = 0;
  for (const auto& b : q->named_buffers()) bytes += b.value().numel() * b.value().element_size();
  EXPECT_EQ(bytes + 4, q->WeightStorageBytes());  // + the fp32 nested offset
  const double per_param = static_cast<double>(q->WeightStorageBytes()) / (out * in);
  EXPECT_LE(per_param, 0.52);
  EXPECT_GT(per_param, 0.5);  // 4 bits + scales
  QuantOptions plain;
  plain.double_quant = false;
  ASSERT_OK_AND_ASSIGN(QuantizedLinear p, QuantizedLinearImpl::FromWeight(at::randn({out, in}), std::nullopt, plain));
  EXPECT_NEAR(static_cast<double>(p->WeightStorageBytes()) / (out * in), 0.5625, 1e-4);
}

TEST(QuantizedLinearTest, ToDtypeCastsOnlyTheBias) {
  ASSERT_OK_AND_ASSIGN(QuantizedLinear q,
                       QuantizedLinearImpl::FromWeight(at::randn({16, 64}), at::randn({16})));
  const at::Tensor x = at::randn({3, 64});
  const at::Tensor y32 = q(x);
  q->to(at::kBFloat16);
  EXPECT_EQ(q->state().packed.scalar_type(), at::kByte);
  EXPECT_EQ(q->state().absmax.scalar_type(), at::kByte);
  EXPECT_EQ(q->state().nested_absmax.scalar_type(), at::kFloat);
  EXPECT_EQ(q->bias().scalar_type(), at::kBFloat16);
  const at::Tensor y16 = q(x.to(at::kBFloat16));
  EXPECT_EQ(y16.scalar_type(), at::kBFloat16);
  EXPECT_LT(MaxRelError(y16, y32), 2e-2);
  q->to(at::kCPU, at::kFloat);
  EXPECT_EQ(q->bias().scalar_type(), at::kFloat);
  EXPECT_OK(q->state().Validate());
}

TEST(QuantizedLinearTest, BuffersCarryBitsandbytesNames) {
  ASSERT_OK_AND_ASSIGN(QuantizedLinear q,
                       QuantizedLinearImpl::FromWeight(at::randn({8, 64}), at::randn({8})));
  std::vector<std::string> names;
  for (const auto& b : q->named_buffers()) names.push_back(b.key());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("weight", "absmax", "quant_map", "nested_absmax",
                                                     "nested_quant_map", "bias"));
  EXPECT_EQ(q->state().absmax.scalar_type(), at::kByte);
  EXPECT_EQ(q->state().nested_quant_map.numel(), 256);
}

}  // namespace
}  // namespace qlorad
