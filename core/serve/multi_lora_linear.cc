#include "core/serve/multi_lora_linear.h"

#include <map>

#include <ATen/ATen.h>

#include "core/quant/nf4_model.h"
#include "core/serve/sgmv_cuda.h"
#include "kernels/sgmv.h"
#include "core/util/status_macros.h"

namespace qlorad::serve {
namespace {

// Groups with at least this many rows use gathered matmuls on the CPU (measured on the
// serving bench: per-row BLAS calls re-read the adapter for every row).
constexpr int64_t kSgmvMaxGroupRows = 4;

bool TakesSgmv(const AdapterRouting::Group& group) {
  return static_cast<int64_t>(group.rows.size()) < kSgmvMaxGroupRows;
}

// Whether b [out, r] is a transposed view of a contiguous [r, out] (at::Tensor::t() would
// allocate a view on every call of the hot path).
bool IsTransposedContiguous(const at::Tensor& b) {
  return b.dim() == 2 && (b.size(0) == 1 || b.stride(0) == 1) && (b.size(1) == 1 || b.stride(1) == b.size(0));
}

}  // namespace

const std::vector<AdapterRouting::Group>& AdapterRouting::Groups(const c10::Device& device) const {
  if (grouped_) return groups_;
  std::map<const ServingAdapter*, std::vector<int64_t>> by_adapter;
  for (size_t row = 0; row < rows.size(); ++row)
    if (rows[row] != nullptr) by_adapter[rows[row]].push_back(static_cast<int64_t>(row));
  for (auto& [adapter, members] : by_adapter) {
    Group group{adapter, std::move(members), {}};
    if (group.rows.size() != rows.size()) group.index = at::tensor(group.rows, at::TensorOptions().dtype(at::kLong)).to(device);
    groups_.push_back(std::move(group));
  }
  grouped_ = true;
  return groups_;
}

at::Tensor MultiLoraLinearLayer::CpuSgmv(at::Tensor y, const at::Tensor& x,
                                         const std::vector<AdapterRouting::Group>& groups) const {
  const int64_t tokens = x.dim() == 3 ? x.size(1) : 1, in = x.size(-1), out = y.size(-1);
  std::vector<kernels::SgmvItem> items;
  items.reserve(static_cast<size_t>(x.size(0)));
  at::Tensor bias = BaseBias();  // for DoRA rows; fp32 already on this path, so no copy
  if (bias.defined()) bias = bias.to(at::kFloat).contiguous();
  for (const auto& group : groups) {
    if (!TakesSgmv(group)) continue;
    auto it = group.adapter->modules.find(module_);
    if (it == group.adapter->modules.end()) continue;
    const ModuleDelta& delta = it->second;
    const at::ScalarType factors = delta.a.scalar_type();
    const bool b_transposed = IsTransposedContiguous(delta.b);
    TORCH_CHECK((factors == at::kFloat || factors == at::kBFloat16) && delta.b.scalar_type() == factors &&
                    delta.a.is_contiguous() && (b_transposed || delta.b.is_contiguous()),
                "adapter '", group.adapter->id, "' module ", module_,
                ": LoRA weights must be fp32 or bf16 on the CPU, A contiguous, B contiguous or transposed");
    const kernels::WeightFormat format = factors == at::kBFloat16 ? kernels::WeightFormat::kBf16 : kernels::WeightFormat::kF32;
    const bool dora = group.adapter->config.use_dora && delta.row_gain.defined();
    if (dora)
      TORCH_CHECK(delta.row_gain.scalar_type() == at::kFloat && delta.row_gain.is_contiguous(), "adapter '",
                  group.adapter->id, "' module ", module_, ": the DoRA row gain must be contiguous fp32 on the CPU");
    for (int64_t row : group.rows)
      items.push_back({x.data_ptr<float>() + row * tokens * in, y.data_ptr<float>() + row * tokens * out, tokens,
                       delta.a.data_ptr(), delta.b.data_ptr(), delta.a.size(0), static_cast<float>(delta.scaling),
                       format, b_transposed, dora ? delta.row_gain.data_ptr<float>() : nullptr,
                       dora && bias.defined() ? bias.data_ptr<float>() : nullptr});
  }
  const absl::Status done = kernels::SgmvF32(items, in, out);
  TORCH_CHECK(done.ok(), "LoRA SGMV for ", module_, ": ", done.ToString());
  return y;
}

MultiLoraLinearLayer::MultiLoraLinearLayer(std::string module, std::shared_ptr<LinearLayer> base,
                                           std::shared_ptr<RoutingSlot> slot)
    : module_(std::move(module)), base_(register_module("base", std::move(base))), slot_(std::move(slot)) {}

at::Tensor MultiLoraLinearLayer::forward(const at::Tensor& x) {
  at::Tensor y = base_->forward(x);
  const AdapterRouting* routing = slot_->current;
  if (routing == nullptr) return y;
  TORCH_CHECK(static_cast<int64_t>(routing->rows.size()) == x.size(0), "adapter routing has ", routing->rows.size(),
              " rows for a batch of ", x.size(0));
  const std::vector<AdapterRouting::Group>& groups = routing->Groups(x.device());
#if defined(QLORAD_SERVE_WITH_CUDA)
  if (x.is_cuda()) {
    AdapterGroups by_delta;
    for (const auto& group : groups) {
      auto it = group.adapter->modules.find(module_);
      if (it != group.adapter->modules.end()) by_delta[&it->second] = group.rows;
    }
    if (by_delta.empty()) return y;
    if (SgmvCudaApplies(x, by_delta)) return ApplyDoraGains(SgmvCudaAdd(y.contiguous(), x, by_delta), groups);
  }
#endif
  // fp32 CPU: groups of a few rows through the SGMV kernel (each adapter read once per
  // row, no copies); larger groups as gathered matmuls (the adapter read once per group).
  const bool cpu_sgmv = x.device().is_cpu() && x.scalar_type() == at::kFloat;
  if (cpu_sgmv) y = y.contiguous();
  bool any_sgmv = false;  // groups for the SGMV kernel, DoRA rescale included
  const int64_t in = x.size(-1);
  for (const auto& group : groups) {
    if (cpu_sgmv && TakesSgmv(group)) {
      any_sgmv = true;
      continue;
    }
    auto it = group.adapter->modules.find(module_);
    if (it == group.adapter->modules.end()) continue;
    const ModuleDelta& delta = it->second;
    // x·Aᵀ·Bᵀ over the group's rows, as 2-D matmuls, added back with the scaling. Factors
    // kept in a narrower dtype than the activations (--adapter-factors bf16) are widened
    // here: bf16 matmuls on the CPU run at a few GFLOP/s.
    const at::Tensor xs = group.index.defined() ? x.index_select(0, group.index) : x;
    const at::ScalarType compute = cpu_sgmv ? at::kFloat : delta.a.scalar_type();
    at::Tensor lora =
        at::mm(at::mm(xs.reshape({-1, in}).to(compute), delta.a.to(compute).t()), delta.b.to(compute).t());
    std::vector<int64_t> shape = xs.sizes().vec();
    shape.back() = y.size(-1);
    lora = lora.view(shape).to(y.scalar_type());
    if (group.index.defined()) {
      y.index_add_(0, group.index, lora, delta.scaling);
    } else {
      y.add_(lora, delta.scaling);
    }
  }
  if (any_sgmv) y = CpuSgmv(y, x.contiguous(), groups);
  return ApplyDoraGains(y, groups, /*skip_sgmv_groups=*/cpu_sgmv);
}

at::Tensor MultiLoraLinearLayer::BaseBias() const {
  if (const auto* dense = dynamic_cast<const DenseLinear*>(base_.get())) return dense->bias();
  if (const auto* quantized = dynamic_cast<const QuantizedLinearLayer*>(base_.get())) return quantized->layer()->bias();
  return at::Tensor();
}

at::Tensor MultiLoraLinearLayer::ApplyDoraGains(at::Tensor y, const std::vector<AdapterRouting::Group>& groups,
                                                bool skip_sgmv_groups) const {
  for (const auto& group : groups) {
    if (skip_sgmv_groups && TakesSgmv(group)) continue;  // rescaled inside the kernel
    if (!group.adapter->config.use_dora) continue;  // LoRA rows: nothing to look up on the hot path
    auto it = group.adapter->modules.find(module_);
    if (it == group.adapter->modules.end() || !it->second.row_gain.defined()) continue;
    const at::Tensor bias = BaseBias();
    const at::Tensor gain = it->second.row_gain.to(y.scalar_type());
    at::Tensor rows = group.index.defined() ? y.index_select(0, group.index) : y;
    if (bias.defined()) {
      const at::Tensor b = bias.to(y.scalar_type());
      rows = (rows - b) * gain + b;
    } else {
      rows = rows * gain;
    }
    if (group.index.defined()) {
      y.index_copy_(0, group.index, rows);
    } else {
      y = rows;
    }
  }
  return y;
}

absl::StatusOr<at::Tensor> BaseLayerWeight(const LinearLayer& layer) {
  if (const auto* dense = dynamic_cast<const DenseLinear*>(&layer)) return dense->weight().to(at::kFloat);
  if (const auto* quantized = dynamic_cast<const QuantizedLinearLayer*>(&layer))
    return quantized->layer()->DequantizedWeight(at::kFloat);
  return absl::UnimplementedError("DoRA: the base layer is neither dense nor 4-bit");
}

LinearFactory MakeMultiLoraLinearFactory(LinearFactory base_factory, std::shared_ptr<RoutingSlot> slot,
                                         std::shared_ptr<BaseModuleShapes> shapes,
                                         std::shared_ptr<BaseModuleLayers> layers) {
  return [base_factory, slot, shapes, layers](const LinearSpec& spec) -> absl::StatusOr<std::shared_ptr<LinearLayer>> {
    QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> base, base_factory ? base_factory(spec) : MakeDenseLinear(spec));
    (*shapes)[spec.module] = {spec.out_features, spec.in_features};
    if (layers != nullptr) (*layers)[spec.module] = base;
    return std::shared_ptr<LinearLayer>(std::make_shared<MultiLoraLinearLayer>(spec.module, std::move(base), slot));
  };
}

}  // namespace qlorad::serve
