// Writes a Hugging Face-format model directory with seeded random weights:
// config.json, model.safetensors (or shards + index) and, optionally, a copied
// tokenizer. Tensors are produced and written one at a time, so models larger
// than RAM (a 7B-shaped checkpoint) can be generated.
#ifndef QLORAD_CORE_MODEL_RANDOM_MODEL_H_
#define QLORAD_CORE_MODEL_RANDOM_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "core/model/config.h"
#include "core/model/dtype.h"

namespace qlorad {

struct RandomModelOptions {
  ModelConfig config;
  DType dtype = DType::kF32;  // kF32 or kBF16
  uint64_t seed = 0;
  uint64_t max_shard_bytes = UINT64_MAX;  // smaller values produce a sharded checkpoint
  std::string tokenizer_path;             // tokenizer.json / tokenizer.model / a directory; "" = none
};

// Weights (deterministic per seed and tensor name): linear layers ~ N(0, 1/in),
// embeddings ~ N(0, 1/hidden), norm weights ~ 1 + N(0, 0.1²), biases ~ N(0, 0.1²).
absl::Status WriteRandomModel(const std::string& dir, const RandomModelOptions& options);

// A config for `model_type` ("llama", "mistral", "qwen2") with the given sizes.
ModelConfig MakeConfig(const std::string& model_type, int64_t layers, int64_t hidden, int64_t heads, int64_t kv_heads,
                       int64_t intermediate, int64_t vocab, bool tie_embeddings);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_RANDOM_MODEL_H_
