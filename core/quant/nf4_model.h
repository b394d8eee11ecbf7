// NF4 (QLoRA) models: the decoder's linear layers held as frozen 4-bit weights,
// either quantized while streaming a full-precision checkpoint or read from a
// pre-quantized checkpoint in the layout Hugging Face transformers writes for
// bitsandbytes 4-bit models (`*-bnb-4bit`). Embeddings, norms and lm_head stay
// in full precision, as in QLoRA.
//
// bitsandbytes layout, per quantized weight W (e.g. model.layers.0.mlp.up_proj):
//   W.weight                               U8  [(n+1)/2, 1]  packed codes, high nibble first
//   W.weight.absmax                        U8 [blocks] (double quant) or F32 [blocks]
//   W.weight.quant_map                     F32 [16]
//   W.weight.nested_absmax                 F32 [ceil(blocks/256)]      (double quant only)
//   W.weight.nested_quant_map              F32 [256]                   (double quant only)
//   W.weight.quant_state.bitsandbytes__nf4 U8  [len]  JSON: quant_type, blocksize, dtype,
//                                          shape, nested_blocksize, nested_dtype, nested_offset
#ifndef QLORAD_CORE_QUANT_NF4_MODEL_H_
#define QLORAD_CORE_QUANT_NF4_MODEL_H_

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/linear.h"
#include "core/model/loader.h"
#include "core/quant/quantized_linear.h"

namespace qlorad {

// The decoder's LinearLayer over a QuantizedLinear.
class QuantizedLinearLayer : public LinearLayer {
 public:
  explicit QuantizedLinearLayer(QuantizedLinear layer);
  at::Tensor forward(const at::Tensor& x) override { return layer_->forward(x); }
  // The packed 4-bit weight on the CPU when in_features is whole blocks (the fused
  // kernel's fast path) and the bias, if any, is fp32.
  std::optional<StreamableWeight> Streamable() const override;
  int64_t in_features() const override { return layer_->in_features(); }
  int64_t out_features() const override { return layer_->out_features(); }
  const QuantizedLinear& layer() const { return layer_; }

 private:
  QuantizedLinear layer_;
};

// A LinearFactory that reads pre-quantized bitsandbytes tensors when the
// checkpoint has them for the module, and otherwise quantizes the module's
// weight with `options` as it streams (the full-precision weight is released
// right after, so loading never holds the model in fp32).
LinearFactory MakeQuantizedLinearFactory(const QuantOptions& options);

// "none", or the 4-bit type ("nf4"/"fp4") a model directory's config.json declares in a
// bitsandbytes quantization_config (pre-quantized checkpoints load as 4-bit).
std::string DeclaredQuantization(const std::string& model_dir);

// The base layers' factory for a `quantize` setting (quantize_setting.h). "none" gives
// dense layers unless model_dir declares bitsandbytes 4-bit quantization, which then
// applies; "nf4"/"fp4" quantize while streaming with `options` (its quant_type is taken
// from the setting). *quantized (optional) tells whether the layers are 4-bit.
absl::StatusOr<LinearFactory> MakeBaseLinearFactory(const std::string& quantize, const std::string& model_dir,
                                                    QuantOptions options = {}, bool* quantized = nullptr);

// True if `checkpoint` holds bitsandbytes 4-bit tensors for `module`.
bool HasBnbState(const Checkpoint& checkpoint, const std::string& module);

// Reads the bitsandbytes tensors of `module` (weight name module + ".weight").
// Errors name the tensor and the field.
absl::StatusOr<Quant4bitState> ReadBnbState(const Checkpoint& checkpoint, const std::string& module);

// Bytes per parameter of all quantized linear layers of `model` (weights and
// scales, not biases) and their parameter count.
struct QuantizedFootprint {
  int64_t parameters = 0;
  int64_t bytes = 0;
  double BytesPerParameter() const { return parameters ? static_cast<double>(bytes) / parameters : 0.0; }
};
QuantizedFootprint MeasureQuantizedFootprint(LlamaModel& model);

// `qlorad-tool quantize`: streams `model_dir`, writes every decoder linear
// weight in bitsandbytes 4-bit layout and every other tensor unchanged into
// `out_dir`, with config.json's quantization_config block (as transformers
// writes it) and the tokenizer files copied. Nothing is left in `out_dir` on failure.
absl::Status QuantizeCheckpoint(const std::string& model_dir, const std::string& out_dir, const QuantOptions& options);

// The base an adapter with a fitted init (lora_init.h: loftq, pissa) was trained over,
// keyed by module ("model.layers.0.self_attn.q_proj").
struct InitializedBase {
  std::optional<QuantOptions> quant;                // 4-bit base: its layout; none: dense
  std::map<std::string, Quant4bitState> quantized;  // 4-bit base: the fitted states
  std::map<std::string, at::Tensor> dense;          // dense base: the fitted weights (written F32)
};
// Writes `base` as a model directory loadable like any other: `model_dir`'s checkpoint with
// the given modules replaced; a 4-bit base in the bitsandbytes layout (the other decoder
// linear weights quantized with base.quant, exactly as loading quantizes them) with its
// quantization_config; config.json otherwise unchanged, tokenizer files copied. Nothing is
// left in `out_dir` on failure; an existing non-empty `out_dir` is ALREADY_EXISTS.
absl::Status WriteInitializedBase(const std::string& model_dir, const std::string& out_dir, const InitializedBase& base);

}  // namespace qlorad

#endif  // QLORAD_CORE_QUANT_NF4_MODEL_H_
