// The serving linear layer: a shared frozen base (dense or 4-bit) plus, per batch
// row, the LoRA delta of that row's adapter. Rows are grouped by adapter. On the CPU in
// fp32, groups of fewer than 4 rows go through kernels::SgmvF32 in place (fp32 or bf16
// factors, B in either layout), larger groups as gathered matmuls (gather rows, x·Aᵀ then
// ·Bᵀ, scale, scatter-add); on CUDA the SGMV kernel of core/serve/sgmv_cuda.h. Rows without
// an adapter pay nothing beyond the shared base matmul. The base is never modified. A DoRA adapter's rows are
// then rescaled per output column: gain ⊙ (y − b) + b (ModuleDelta::row_gain).
//
// Routing: the engine points a RoutingSlot at the batch's AdapterRouting for the
// duration of one forward (under its model lock); every layer reads it.
#ifndef QLORAD_CORE_SERVE_MULTI_LORA_LINEAR_H_
#define QLORAD_CORE_SERVE_MULTI_LORA_LINEAR_H_

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "core/model/loader.h"
#include "core/serve/serving_adapter.h"

namespace qlorad::serve {

// Per batch row, the adapter to apply (nullptr: base only). The rows of each adapter
// are grouped once per forward (on first use, under the model lock) and shared by
// every layer.
struct AdapterRouting {
  struct Group {
    const ServingAdapter* adapter = nullptr;
    std::vector<int64_t> rows;
    at::Tensor index;  // rows on the compute device; undefined when the group is the whole batch
  };
  std::vector<const ServingAdapter*> rows;

  const std::vector<Group>& Groups(const c10::Device& device) const;

 private:
  mutable std::vector<Group> groups_;
  mutable bool grouped_ = false;
};

struct RoutingSlot {
  const AdapterRouting* current = nullptr;
};

class MultiLoraLinearLayer : public LinearLayer {
 public:
  MultiLoraLinearLayer(std::string module, std::shared_ptr<LinearLayer> base, std::shared_ptr<RoutingSlot> slot);
  // x [B, T, in] (or [B, in]) -> [B, T, out]; row i gets slot->current->rows[i]'s delta.
  at::Tensor forward(const at::Tensor& x) override;
  int64_t in_features() const override { return base_->in_features(); }
  int64_t out_features() const override { return base_->out_features(); }

 private:
  // The fp32 CPU path for those of `groups` under 4 rows (the others are skipped):
  // kernels::SgmvF32, in place on y, DoRA groups' rescale included.
  at::Tensor CpuSgmv(at::Tensor y, const at::Tensor& x, const std::vector<AdapterRouting::Group>& groups) const;
  // DoRA groups' rows of y (base + delta already added) become gain ⊙ (y − b) + b;
  // skip_sgmv_groups: groups under 4 rows are left alone (CpuSgmv rescaled them).
  at::Tensor ApplyDoraGains(at::Tensor y, const std::vector<AdapterRouting::Group>& groups,
                            bool skip_sgmv_groups = false) const;
  at::Tensor BaseBias() const;  // the base layer's bias, or undefined

  std::string module_;
  std::shared_ptr<LinearLayer> base_;
  std::shared_ptr<RoutingSlot> slot_;
};

// Module name -> the resident base's layer (for DoRA's row norms).
using BaseModuleLayers = std::map<std::string, std::shared_ptr<LinearLayer>>;

// Wraps every linear layer `base_factory` builds and records its shape in *shapes (and,
// when given, its base layer in *layers).
LinearFactory MakeMultiLoraLinearFactory(LinearFactory base_factory, std::shared_ptr<RoutingSlot> slot,
                                         std::shared_ptr<BaseModuleShapes> shapes,
                                         std::shared_ptr<BaseModuleLayers> layers = nullptr);

// A base layer's weight in fp32 [out, in] (dequantized for 4-bit), or UNIMPLEMENTED.
absl::StatusOr<at::Tensor> BaseLayerWeight(const LinearLayer& layer);

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_MULTI_LORA_LINEAR_H_
