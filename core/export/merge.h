// Merging a PEFT LoRA adapter into its base model's weights (`qlorad-tool merge`, and the
// GGUF exporter's --merge): W' = W0 + scaling · B @ A per adapted module, in fp32.
//
// W0, the weight the adapter is merged onto:
//   * kDequant  — dequant(quant(W)): the 4-bit weights a QLoRA adapter was trained against.
//                 Every decoder linear layer (adapted or not) is replaced by its dequantized
//                 weight, so the merged model computes what the served QLoRA model computes
//                 (base in 4 bits + adapter), up to fp32 rounding. Quantization is done by the
//                 very layers training/serving use (MakeBaseLinearFactory + QuantizedLinear),
//                 so the dequantized weights are bit-identical to theirs.
//   * kOriginal — the checkpoint's weights (converted to fp32): a plain LoRA adapter's base,
//                 or an explicit choice for a QLoRA adapter (PEFT's usual merge; loses the
//                 quantization error the adapter learned to compensate for).
//   * kAuto     — kDequant when the adapter records a 4-bit base (training_run.json
//                 base_model.quantization or adapter metadata qlorad_base_quantization is
//                 nf4/fp4), when `quantize` is set, or when the base directory is itself a
//                 pre-quantized bitsandbytes checkpoint; kOriginal otherwise.
// kDequant for an adapter that records no 4-bit base and without `quantize` is
// INVALID_ARGUMENT (it would silently invent a quantization); kOriginal onto a pre-quantized
// base is INVALID_ARGUMENT (there are no original weights).
//
// Adapter rank/alpha/rsLoRA come from LoraConfig (RankFor/AlphaFor, use_rslora) as read by
// ReadPeftConfig; tensors are read and checked by LoadPeftWeights (a tensor that does not fit
// the base is refused naming it). An adapter whose metadata records another base fingerprint
// is FAILED_PRECONDITION unless allow_base_mismatch.
//
// Memory: the base is loaded once in fp32 on the CPU (plus the merged copies).
#ifndef QLORAD_CORE_EXPORT_MERGE_H_
#define QLORAD_CORE_EXPORT_MERGE_H_

#include <map>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/dtype.h"
#include "core/quant/quant_state.h"

namespace qlorad {

enum class MergeOnto { kAuto, kDequant, kOriginal };

// "auto" | "dequant" | "original"; INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<MergeOnto> ParseMergeOnto(const std::string& name, const std::string& field = "merge_onto");
const char* MergeOntoName(MergeOnto onto);

struct MergeOptions {
  MergeOnto onto = MergeOnto::kAuto;
  // The 4-bit quantization the adapter was trained against, overriding what the adapter
  // records (for adapters trained elsewhere). nullopt: read it from the adapter.
  std::optional<QuantOptions> quantize;
  bool allow_base_mismatch = false;
};

struct MergedWeights {
  // HF weight name ("model.layers.0.self_attn.q_proj.weight") -> fp32 [out, in] CPU tensor:
  // every weight that differs from the checkpoint's (adapted modules; with kDequant also
  // every other decoder linear layer, dequantized). Other tensors are the checkpoint's.
  std::map<std::string, at::Tensor> weights;
  std::string base_fingerprint;            // of model_dir ("sha256:...")
  std::string adapter_id;                  // metadata qlorad_adapter_id / qlorad_job, else dir name
  std::string adapter_sha256;              // of adapter_model.safetensors
  MergeOnto onto = MergeOnto::kOriginal;   // resolved (never kAuto)
  std::string quantization;                // what kDequant used, e.g. "nf4 blocksize 64 double-quant"; "" for kOriginal
  int64_t adapted_modules = 0;

  // qlorad_base_fingerprint, qlorad_adapter_id, qlorad_adapter_sha256, qlorad_merge_onto
  // (+ qlorad_merge_quantization with kDequant).
  std::map<std::string, std::string> Metadata() const;
  // The same under GGUF's key convention ("qlorad.base_fingerprint", ...).
  std::map<std::string, std::string> GgufMetadata() const;
};

absl::StatusOr<MergedWeights> MergeAdapterIntoWeights(const std::string& model_dir, const std::string& adapter_dir,
                                                      const MergeOptions& options = {});

// Writes an HF model directory `out_dir`: config.json (torch_dtype = `dtype`, any
// quantization_config dropped), the tokenizer files and generation_config.json when present,
// model.safetensors with every checkpoint tensor — merged ones replaced, bitsandbytes side
// tensors of replaced weights dropped — floating ones converted to `dtype` (F32/F16/BF16),
// __metadata__ = merged.Metadata() + format "pt", and merge_record.json. Built in a
// temporary sibling directory renamed at the end: on failure `out_dir` is not created.
// ALREADY_EXISTS if `out_dir` exists and is not empty.
absl::Status WriteMergedModel(const std::string& model_dir, const MergedWeights& merged, const std::string& out_dir,
                              DType dtype);

// "f32"/"float32" -> kF32, "f16"/"float16" -> kF16, "bf16"/"bfloat16" -> kBF16.
absl::StatusOr<DType> ParseMergeDType(const std::string& name, const std::string& field = "dtype");

}  // namespace qlorad

#endif  // QLORAD_CORE_EXPORT_MERGE_H_
