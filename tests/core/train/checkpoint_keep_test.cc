// Selective recomputation under gradient checkpointing (TrainerOptions::checkpoint_keep):
// a kept base output is recorded in the forward and replayed, unchanged, in the recompute
// (no second matmul), a skipped one is zeros, and either carries the base's input gradient
// grad·W, checked against W itself. gradient_test checks the whole model's gradients.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include "core/quant/lora_linear.h"
#include "core/quant/quantized_linear.h"
#include "core/train/lora_model.h"
#include "core/util/base_output_tape.h"
#include "core/util/checkpoint_base.h"
#include "gtest/gtest.h"
#include "tests/core/train/adapted_model.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"
#include "core/model/random_model.h"

namespace qlorad {
namespace {

constexpr int64_t kIn = 40, kOut = 24;

LoraLinear MakeLayer(bool quantize, bool dora = false) {
  at::manual_seed(7);
  const at::Tensor w = at::randn({kOut, kIn});
  LoraLinearOptions options(4, 8);
  options.use_dora(dora);
  if (!quantize) return LoraLinearImpl::Create(options, w, std::nullopt).value();
  auto base = QuantizedLinearImpl::FromWeight(w, std::nullopt);
  EXPECT_OK(base.status());
  return LoraLinearImpl::Create(options, *base).value();
}

// Expects `run` to throw a c10::Error whose message contains `text`.
template <typename Run>
void ExpectErrorContaining(const Run& run, const std::string& text) {
  try {
    run();
    ADD_FAILURE() << "no error; expected one containing \"" << text << "\"";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

// The forward's no-grad base output of `layer` on x, recorded on a fresh tape.
BaseOutputTape Record(LoraLinear& layer, const at::Tensor& x) {
  BaseOutputTape tape;
  at::NoGradGuard no_grad;
  ScopedBaseOutputTape recording(&tape);
  layer->BaseForward(x);
  return tape;
}

TEST(CheckpointKeepTest, KeptOutputIsReplayedWithTheBaseGradient) {
  for (bool quantize : {false, true}) {
    LoraLinear layer = MakeLayer(quantize);
    layer->set_checkpoint_base(CheckpointBase::kKeep);
    at::manual_seed(8);
    const at::Tensor x = at::randn({2, 3, kIn});
    BaseOutputTape recorded = Record(layer, x);
    ASSERT_EQ(recorded.outputs().size(), 1u);
    EXPECT_TRUE(at::equal(recorded.outputs()[0], layer->BaseForward(x)));
    // Replay a marked tensor: the layer must return it, not compute the matmul again.
    const at::Tensor marked = recorded.outputs()[0] + 1.0;
    BaseOutputTape replay({marked}, recorded.owners(), {marked._version()});
    const at::Tensor input = x.clone().requires_grad_(true);
    at::Tensor y;
    {
      ScopedBaseOutputTape replaying(&replay);
      y = layer->BaseForward(input);
    }
    EXPECT_TRUE(replay.Exhausted());
    EXPECT_TRUE(at::equal(y.detach(), marked)) << (quantize ? "nf4" : "dense");
    const at::Tensor grad = at::randn({2, 3, kOut});
    y.backward(grad);
    const at::Tensor w = layer->BaseWeight().value();
    EXPECT_TRUE(at::allclose(input.grad(), at::matmul(grad, w), 1e-5, 1e-5)) << (quantize ? "nf4" : "dense");
  }
}

TEST(CheckpointKeepTest, SkippedOutputIsZerosUnlessDora) {
  at::manual_seed(9);
  const at::Tensor x = at::randn({5, kIn});
  LoraLinear layer = MakeLayer(false);
  layer->set_checkpoint_base(CheckpointBase::kSkip);
  EXPECT_TRUE(Record(layer, x).outputs().empty());
  BaseOutputTape replay({}, {}, {});
  const at::Tensor input = x.clone().requires_grad_(true);
  at::Tensor y;
  {
    ScopedBaseOutputTape replaying(&replay);
    y = layer->BaseForward(input);
  }
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{5, kOut}));
  EXPECT_EQ(y.abs().max().item<float>(), 0.0f);
  const at::Tensor grad = at::randn({5, kOut});
  y.backward(grad);
  EXPECT_TRUE(at::allclose(input.grad(), at::matmul(grad, layer->BaseWeight().value()), 1e-5, 1e-5));
  // DoRA's magnitude gradient reads the base output, so a DoRA layer keeps it.
  LoraLinear dora = MakeLayer(false, /*dora=*/true);
  dora->set_checkpoint_base(CheckpointBase::kSkip);
  EXPECT_EQ(Record(dora, x).outputs().size(), 1u);
}

TEST(CheckpointKeepTest, ReplayOnAnotherPathIsAnError) {
  at::manual_seed(10);
  const at::Tensor x = at::randn({2, kIn});
  LoraLinear first = MakeLayer(false), second = MakeLayer(false);
  first->set_checkpoint_base(CheckpointBase::kKeep);
  second->set_checkpoint_base(CheckpointBase::kKeep);
  BaseOutputTape recorded = Record(first, x);
  BaseOutputTape replay(recorded.outputs(), recorded.owners(), recorded.versions());
  ScopedBaseOutputTape replaying(&replay);
  ExpectErrorContaining([&] { second->BaseForward(x); }, "recorded by another layer");
  first->BaseForward(x);
  ExpectErrorContaining([&] { first->BaseForward(x); }, "took another path");  // the tape is exhausted
}

TEST(CheckpointKeepTest, OutputModifiedInPlaceIsNotReplayed) {
  at::manual_seed(11);
  const at::Tensor x = at::randn({2, kIn});
  LoraLinear layer = MakeLayer(true);
  layer->set_checkpoint_base(CheckpointBase::kKeep);
  BaseOutputTape recorded = Record(layer, x);
  recorded.outputs()[0].mul_(2);  // e.g. a later in-place op on the forward's value
  BaseOutputTape replay(recorded.outputs(), recorded.owners(), recorded.versions());
  ScopedBaseOutputTape replaying(&replay);
  ExpectErrorContaining([&] { layer->BaseForward(x); }, "modified in place");
}

TEST(CheckpointKeepTest, SettingChoosesPerProjection) {
  const std::string dir = qlorad::testing::MakeTempDir("checkpoint_keep_model");
  RandomModelOptions options;
  options.config = MakeConfig("llama", 1, 32, 4, 2, 64, 50, false);
  ASSERT_OK(WriteRandomModel(dir, options));
  qlorad::testing::AdaptedModel m = qlorad::testing::LoadAdaptedModel(dir, false, 0.0);
  ASSERT_EQ(m.modules->size(), 7u);
  for (const char* keep : {"none", "attention", "all"}) {
    ASSERT_OK(SetCheckpointKeep(*m.modules, keep));
    for (const auto& [name, layer] : *m.modules) {
      const std::string projection = name.substr(name.rfind('.') + 1);
      CheckpointBase expected = CheckpointBase::kRecompute;
      if (std::string(keep) != "none") {
        if (projection == "down_proj") expected = CheckpointBase::kSkip;
        else if (projection != "gate_proj" && projection != "up_proj") expected = CheckpointBase::kKeep;
        else if (std::string(keep) == "all") expected = CheckpointBase::kKeep;
      }
      EXPECT_EQ(layer->checkpoint_base(), expected) << name << " with " << keep;
    }
  }
  const absl::Status bad = SetCheckpointKeep(*m.modules, "mlp");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("checkpoint_keep"), std::string::npos) << bad;
}

}  // namespace
}  // namespace qlorad
