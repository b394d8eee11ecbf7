// Test helper for core/train tests: a model loaded with a small LoRA on every projection.
#ifndef QLORAD_TESTS_CORE_TRAIN_ADAPTED_MODEL_H_
#define QLORAD_TESTS_CORE_TRAIN_ADAPTED_MODEL_H_

#include <memory>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/model/loader.h"
#include "core/quant/nf4_model.h"
#include "core/train/lora_model.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::testing {

struct AdaptedModel {
  LoadedModel loaded;
  std::shared_ptr<LoraModules> modules = std::make_shared<LoraModules>();
};

// `dir` with r=4, alpha=8 LoRA (dropout `dropout`; DoRA when `use_dora`) on every projection,
// over an NF4 base when `quantize`. Seeded (at::manual_seed(5)), so two loads are equal;
// lora_B ~ N(0, 0.05²) instead of 0, so that lora_A gets a gradient too.
inline AdaptedModel LoadAdaptedModel(const std::string& dir, bool quantize, double dropout, bool use_dora = false) {
  AdaptedModel out;
  at::manual_seed(5);
  LoraConfig config;
  config.r = 4;
  config.alpha = 8;
  config.dropout = dropout;
  config.use_dora = use_dora;
  LoadOptions options;
  if (quantize) options.linear_factory = MakeQuantizedLinearFactory(QuantOptions{});
  options.linear_factory = MakeLoraLinearFactory(config, options.linear_factory, out.modules);
  auto loaded = LoadModel(dir, options);
  EXPECT_OK(loaded.status());
  out.loaded = std::move(loaded).value();
  at::NoGradGuard no_grad;
  for (auto& [name, layer] : *out.modules) layer->lora_B.normal_(0, 0.05);
  return out;
}

}  // namespace qlorad::testing

#endif  // QLORAD_TESTS_CORE_TRAIN_ADAPTED_MODEL_H_
