// Exports a Hugging Face model directory (config.json, safetensors, tokenizer.json)
// as one GGUF file that llama.cpp (and Ollama) load: architecture metadata, the
// embedded tokenizer, and every weight under llama.cpp's name, with q/k rows
// permuted for architecture "llama" (see gguf_llama.h). Norms and biases are
// always f32; `type` applies to the 2-D weights, and a weight whose rows are not a
// whole number of 32-value blocks falls back to f16 for a quantized type (noted in
// the result). Streams one tensor at a time; the file appears atomically.
#ifndef QLORAD_CORE_EXPORT_GGUF_MODEL_EXPORT_H_
#define QLORAD_CORE_EXPORT_GGUF_MODEL_EXPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "core/export/gguf_tokenizer.h"
#include "core/export/gguf_types.h"

namespace qlorad::gguf {

struct ModelExportOptions {
  std::string model_dir;
  std::string out_path;
  GgmlType type = GgmlType::kF32;
  // With q4_0 the output head (lm_head, or the tied embeddings) is written as q8_0, as
  // llama.cpp's llama-quantize keeps it above q4_0 (it uses q6_K); `pure` writes it as q4_0.
  bool pure = false;
  std::string name;  // general.name; default: the model directory's base name
  // Weights to write instead of the checkpoint's, keyed by Hugging Face tensor name
  // ("model.layers.0.self_attn.q_proj.weight"), e.g. LoRA-merged weights. Same shape
  // as the checkpoint's; any float dtype and device. Not owned; may be null.
  const std::map<std::string, at::Tensor>* overrides = nullptr;
  // Extra string metadata (e.g. qlorad.base_fingerprint, qlorad.adapter_id of a merged export).
  std::map<std::string, std::string> metadata;
};

struct ModelExportResult {
  std::string architecture;  // "llama" or "qwen2"
  int64_t tensor_count = 0;
  uint64_t file_bytes = 0;
  GgufVocabInfo vocab;
  std::vector<std::string> notes;  // e.g. tensors that fell back to f16
};

// Errors name the file/tensor: a missing or mis-shaped tensor, an unsupported
// model type or tokenizer, an override for a tensor the export does not carry.
absl::StatusOr<ModelExportResult> ExportModelGguf(const ModelExportOptions& options);

}  // namespace qlorad::gguf

#endif  // QLORAD_CORE_EXPORT_GGUF_MODEL_EXPORT_H_
