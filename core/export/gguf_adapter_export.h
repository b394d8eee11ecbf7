// Exports a PEFT LoRA adapter directory as a llama.cpp GGUF LoRA adapter
// (what convert_lora_to_gguf.py writes): general.type "adapter",
// general.architecture of the base, adapter.type "lora", adapter.lora.alpha (f32),
// and per adapted module `<gguf weight name>.lora_a` (torch shape [r, in]) and
// `.lora_b` ([out, r]); for architecture "llama" the q/k lora_b rows carry the same
// permutation as the base weight (gguf_llama.h).
//
// Scale. llama.cpp applies scale = adapter.lora.alpha / r, with r the module's own
// rank (lora_b's ne[0]). qlorad applies s_m = alpha_m / r_m (alpha_m / sqrt(r_m)
// with use_rslora), alpha_m and r_m from alpha_pattern/rank_pattern
// (LoraConfig::AlphaFor/RankFor). The export writes adapter.lora.alpha = lora_alpha
// and multiplies each module's lora_b by s_m / (lora_alpha / r_m), so that
// llama.cpp's alpha / r_m times lora_b reproduces s_m · B exactly. For a plain
// adapter (no patterns, no rsLoRA) that factor is exactly 1 and B is written as is.
//
// DoRA cannot be expressed as a GGUF LoRA (refused; merge instead). Tensors are
// f32 (default) or f16; GGUF LoRA tensors are never quantized.
#ifndef QLORAD_CORE_EXPORT_GGUF_ADAPTER_EXPORT_H_
#define QLORAD_CORE_EXPORT_GGUF_ADAPTER_EXPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/export/gguf_types.h"

namespace qlorad::gguf {

struct AdapterExportOptions {
  std::string model_dir;    // the base model (its config.json decides arch and heads)
  std::string adapter_dir;  // adapter_config.json + adapter_model.safetensors
  std::string out_path;
  GgmlType type = GgmlType::kF32;  // kF32 or kF16
};

struct AdapterExportResult {
  std::string architecture;
  float alpha = 0;             // adapter.lora.alpha as written
  int64_t modules = 0;         // adapted modules written
  int64_t folded_modules = 0;  // modules whose lora_b carries a scale factor != 1
  std::vector<std::string> notes;
};

// FAILED_PRECONDITION for DoRA; INVALID_ARGUMENT naming the tensor for a key that
// is not a PEFT LoRA key of a base module, a wrong shape, a rank that differs from
// adapter_config.json, or a type other than f32/f16.
absl::StatusOr<AdapterExportResult> ExportAdapterGguf(const AdapterExportOptions& options);

}  // namespace qlorad::gguf

#endif  // QLORAD_CORE_EXPORT_GGUF_ADAPTER_EXPORT_H_
