// LoRA on the decoder: the layer that carries an adapter and the linear factory
// that puts one on each module a LoraConfig targets. The config and the PEFT
// adapter format (saving, loading) are core/adapter.
//
// The base stays frozen and unmodified: y = base(x) + scaling · B(A(dropout(x))).
// (The fitted inits build a new base beside the checkpoint's; nothing loaded is changed.)
#ifndef QLORAD_CORE_TRAIN_LORA_MODEL_H_
#define QLORAD_CORE_TRAIN_LORA_MODEL_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/adapter/lora_config.h"
#include "core/adapter/peft_weights.h"
#include "core/model/linear.h"
#include "core/model/loader.h"
#include "core/quant/lora_linear.h"

namespace qlorad {

// The decoder's LinearLayer over a LoraLinear.
class LoraLinearLayer : public LinearLayer {
 public:
  explicit LoraLinearLayer(LoraLinear layer);
  at::Tensor forward(const at::Tensor& x) override { return layer_->forward(x); }
  int64_t in_features() const override { return layer_->in_features(); }
  int64_t out_features() const override { return layer_->out_features(); }
  // The base (dense fp32 or 4-bit, as DenseLinear / QuantizedLinearLayer stream it) and
  // fp32 CPU factors, while the adapter is enabled, dropout inactive and the layer not DoRA.
  std::optional<StreamableLowRank> StreamableAdapter() const override;
  LoraLinear& layer() { return layer_; }

 private:
  LoraLinear layer_;
};

// Wraps `base_factory` (dense or 4-bit): targeted modules become LoraLinearLayer
// (recorded in *modules), others stay as the base factory built them.
// config.init loftq / pissa (core/quant/lora_init.h) give targeted modules a base derived
// from the checkpoint's full-precision W instead of the base factory's layer (whose 4-bit
// layout they keep); the base written for such an adapter is WriteInitializedBase's.
// *tally (optional) sums those modules' step-0 errors.
LinearFactory MakeLoraLinearFactory(const LoraConfig& config, LinearFactory base_factory,
                                    std::shared_ptr<LoraModules> modules,
                                    std::shared_ptr<InitErrorTally> tally = nullptr);

// Applies TrainerOptions::checkpoint_keep ("none", "attention" or "all"; anything else is
// INVALID_ARGUMENT) to the modules, by their names' last component (q_proj ... down_proj).
absl::Status SetCheckpointKeep(LoraModules& modules, const std::string& keep);

// Every trainable adapter tensor, in module order: lora_A then lora_B of each module
// (in the first 2 · modules.size() entries, even indices are A, odd are B), then the DoRA
// magnitude of each DoRA module.
std::vector<at::Tensor> LoraParameters(const LoraModules& modules);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_LORA_MODEL_H_
