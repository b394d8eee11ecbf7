#include "core/serve/serving_adapter.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "core/adapter/peft_config.h"
#include "core/model/dtype.h"
#include "core/model/safetensors.h"
#include "core/model/tensor_io.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad::serve {
namespace {

absl::Status CheckFingerprint(const std::string& dir, const std::string& recorded, const AdapterLoadOptions& options) {
  if (recorded.empty() || options.base_fingerprint.empty() || recorded == options.base_fingerprint) return absl::OkStatus();
  if (options.allow_base_mismatch) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("adapter '", dir, "' was trained on base ", recorded,
                                                    " but the resident base is ", options.base_fingerprint,
                                                    " (hint: wrong base model? allow_base_mismatch overrides, and is recorded)"));
}

absl::Status PlaceTensor(const SafetensorsFile& file, const TensorInfo& info, const BaseModuleShapes& base,
                         const LoraConfig& config, const AdapterLoadOptions& options, ServingAdapter& adapter) {
  const std::string& name = info.name;
  QLORAD_ASSIGN_OR_RETURN(PeftTensorKey key, ParsePeftTensorKey(name, /*allow_magnitude=*/config.use_dora));
  const std::string& module = key.module;
  auto shape = base.find(module);
  if (shape == base.end())
    return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "': module '", module,
                                                   "' is not a linear layer of the resident base (hint: wrong base model?)"));
  if (!config.Targets(module))
    return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "': adapter_config.json does not target module '",
                                                   module, "' (hint: target_modules / layers_to_transform / exclude_modules ",
                                                   "do not select it; PEFT would not apply this tensor)"));
  if (info.dtype != DType::kF32 && info.dtype != DType::kF16 && info.dtype != DType::kBF16 && info.dtype != DType::kF64)
    return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "' has dtype ", DTypeName(info.dtype),
                                                   " (hint: LoRA weights must be F32, F16, BF16 or F64)"));
  const int64_t r = config.RankFor(module);
  if (r > options.max_rank)
    return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "': rank ", r, " exceeds the server's max rank ",
                                                   options.max_rank, " (hint: raise --max-lora-rank)"));
  const std::vector<int64_t> expected = key.is_magnitude ? std::vector<int64_t>{shape->second.first}
                                         : key.is_a      ? std::vector<int64_t>{r, shape->second.second}
                                                         : std::vector<int64_t>{shape->second.first, r};
  if (info.shape != expected)
    return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", name, "' has shape ", info.ShapeString(), " but module '",
                                                   module, "' with rank ", r, " (adapter_config.json r / rank_pattern) needs [",
                                                   expected[0], ", ", expected[1],
                                                   "] (hint: wrong base model, or a rank_pattern key that does not match?)"));
  QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(file, info));
  ModuleDelta& delta = adapter.modules[module];
  const at::ScalarType dtype = key.is_magnitude ? options.dtype : options.factor_dtype.value_or(options.dtype);
  // On the CPU, B [out, r] is kept as a transposed view of a contiguous Bᵀ [r, out]: the
  // SGMV kernel's decode rows then stream r rows of Bᵀ (kernels/sgmv.h b_transposed).
  const bool transpose = options.device.is_cpu() && !key.is_a && !key.is_magnitude;
  const at::Tensor source = transpose ? view.t() : view;
  at::Tensor placed = at::empty(source.sizes(), source.options().device(options.device).dtype(dtype)).copy_(source);
  if (transpose) placed = placed.t();
  (key.is_magnitude ? delta.magnitude : key.is_a ? delta.a : delta.b) = placed;
  delta.scaling = config.ScalingFor(module);
  adapter.bytes += placed.numel() * placed.element_size();
  return absl::OkStatus();
}

// delta.row_gain = m / ‖W + s·BA‖_row over the resident base's W.
absl::Status PlaceDoraGain(const std::string& dir, const std::string& module, const AdapterLoadOptions& options,
                           ModuleDelta& delta, int64_t& adapter_bytes) {
  if (!delta.magnitude.defined())
    return absl::InvalidArgumentError(absl::StrCat("adapter in '", dir, "': module '", module, "' has no lora_magnitude_vector ",
                                                   "although use_dora is set (hint: the adapter file is incomplete)"));
  QLORAD_ASSIGN_OR_RETURN(at::Tensor w, options.base_weight(module));
  return CatchTorchErrors(absl::StrCat("DoRA row norms of '", module, "'"), [&]() -> absl::Status {
    const at::Tensor a = delta.a.to(w.device(), at::kFloat), b = delta.b.to(w.device(), at::kFloat);
    const at::Tensor norm = (w + at::matmul(b, a) * delta.scaling).norm(2, {1});
    delta.row_gain = (delta.magnitude.to(w.device(), at::kFloat) / norm).to(options.device, options.dtype);
    adapter_bytes += delta.row_gain.numel() * delta.row_gain.element_size();
    return absl::OkStatus();
  });
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ServingAdapter>> LoadServingAdapter(const std::string& dir, const std::string& id,
                                                                         const BaseModuleShapes& base,
                                                                         const AdapterLoadOptions& options) {
  auto adapter = std::make_shared<ServingAdapter>();
  adapter->id = id;
  adapter->path = dir;
  QLORAD_ASSIGN_OR_RETURN(adapter->config, ReadPeftConfig(dir));
  if (adapter->config.use_dora && !options.base_weight)
    return absl::FailedPreconditionError(absl::StrCat(
        dir, "/adapter_config.json: use_dora is true, and this loader has no access to the base weights DoRA's row ",
        "norms need (hint: load it through the serving engine, or merge it with qlorad-tool merge)"));
  QLORAD_ASSIGN_OR_RETURN(std::string weights, PeftWeightsPath(dir));
  QLORAD_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(weights));
  auto fingerprint = file->metadata().find("qlorad_base_fingerprint");
  if (fingerprint != file->metadata().end()) adapter->base_fingerprint = fingerprint->second;
  QLORAD_RETURN_IF_ERROR(CheckFingerprint(dir, adapter->base_fingerprint, options));
  adapter->base_mismatch_overridden = !adapter->base_fingerprint.empty() && !options.base_fingerprint.empty() &&
                                      adapter->base_fingerprint != options.base_fingerprint;
  for (const TensorInfo& info : file->tensors()) {
    QLORAD_RETURN_IF_ERROR(CatchTorchErrors(absl::StrCat("placing adapter tensor '", info.name, "'"), [&] {
      return PlaceTensor(*file, info, base, adapter->config, options, *adapter);
    }));
  }
  if (adapter->modules.empty())
    return absl::InvalidArgumentError(absl::StrCat("adapter in '", dir, "' applies to zero modules of the resident base"));
  for (auto& [module, delta] : adapter->modules) {
    if (!delta.a.defined() || !delta.b.defined())
      return absl::InvalidArgumentError(absl::StrCat("adapter in '", dir, "': module '", module, "' has only one of lora_A/lora_B",
                                                     " (hint: the adapter file is incomplete)"));
    if (adapter->config.use_dora) QLORAD_RETURN_IF_ERROR(PlaceDoraGain(dir, module, options, delta, adapter->bytes));
  }
  return std::shared_ptr<const ServingAdapter>(std::move(adapter));
}

}  // namespace qlorad::serve
