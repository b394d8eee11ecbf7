#include "core/serve/multi_lora_linear.h"

#include <map>

#include <ATen/ATen.h>

#include "core/serve/sgmv_cuda.h"
#include "core/util/status_macros.h"

namespace qlorad::serve {

MultiLoraLinearLayer::MultiLoraLinearLayer(std::string module, std::shared_ptr<LinearLayer> base,
                                           std::shared_ptr<RoutingSlot> slot)
    : module_(std::move(module)), base_(register_module("base", std::move(base))), slot_(std::move(slot)) {}

at::Tensor MultiLoraLinearLayer::forward(const at::Tensor& x) {
  at::Tensor y = base_->forward(x);
  const AdapterRouting* routing = slot_->current;
  if (routing == nullptr) return y;
  TORCH_CHECK(static_cast<int64_t>(routing->rows.size()) == x.size(0), "adapter routing has ", routing->rows.size(),
              " rows for a batch of ", x.size(0));
  AdapterGroups groups;
  for (size_t row = 0; row < routing->rows.size(); ++row) {
    const ServingAdapter* adapter = routing->rows[row];
    if (adapter == nullptr) continue;
    auto it = adapter->modules.find(module_);
    if (it != adapter->modules.end()) groups[&it->second].push_back(static_cast<int64_t>(row));
  }
  if (groups.empty()) return y;
#if defined(QLORAD_SERVE_WITH_CUDA)
  if (SgmvCudaApplies(x, groups)) return SgmvCudaAdd(y.contiguous(), x, groups);
#endif
  for (const auto& [delta, rows] : groups) {
    auto apply = [&](const at::Tensor& xs) {
      return at::matmul(at::matmul(xs.to(delta->a.scalar_type()), delta->a.t()), delta->b.t()).mul_(delta->scaling).to(y.scalar_type());
    };
    if (static_cast<int64_t>(rows.size()) == x.size(0)) {
      y = y + apply(x);  // the whole batch shares one adapter: no gather
    } else {
      at::Tensor index = at::tensor(rows, at::TensorOptions().dtype(at::kLong)).to(x.device());
      y = y.index_add(0, index, apply(x.index_select(0, index)));
    }
  }
  return y;
}

LinearFactory MakeMultiLoraLinearFactory(LinearFactory base_factory, std::shared_ptr<RoutingSlot> slot,
                                         std::shared_ptr<BaseModuleShapes> shapes) {
  return [base_factory, slot, shapes](const LinearSpec& spec) -> absl::StatusOr<std::shared_ptr<LinearLayer>> {
    QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> base, base_factory ? base_factory(spec) : MakeDenseLinear(spec));
    (*shapes)[spec.module] = {spec.out_features, spec.in_features};
    return std::shared_ptr<LinearLayer>(std::make_shared<MultiLoraLinearLayer>(spec.module, std::move(base), slot));
  };
}

}  // namespace qlorad::serve
