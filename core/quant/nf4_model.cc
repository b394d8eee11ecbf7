#include "core/quant/nf4_model.h"

#include "absl/strings/str_cat.h"
#include "core/model/tensor_io.h"
#include "core/quant/quantize_setting.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

using Json = nlohmann::json;

std::string StateKey(const std::string& module, kernels::QuantType type) {
  return absl::StrCat(module, ".weight.quant_state.bitsandbytes__", kernels::QuantTypeName(type));
}

absl::StatusOr<at::Tensor> CopyOf(const Checkpoint& checkpoint, const std::string& name, DType expected_dtype) {
  QLORAD_ASSIGN_OR_RETURN(Checkpoint::Entry entry, checkpoint.Get(name));
  if (entry.info->dtype != expected_dtype)
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has dtype ", DTypeName(entry.info->dtype),
                                                   ", bitsandbytes layout needs ", DTypeName(expected_dtype)));
  QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*entry.file, *entry.info));
  return CatchTorchErrors(absl::StrCat("reading '", name, "'"), [&]() -> absl::StatusOr<at::Tensor> {
    return view.reshape({-1}).clone();
  });
}

absl::StatusOr<at::ScalarType> ParseTorchDType(const std::string& name, const std::string& key) {
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  if (name == "float32") return at::kFloat;
  return absl::InvalidArgumentError(absl::StrCat("'", key, "': dtype '", name, "' is not bfloat16, float16 or float32"));
}

absl::Status ApplyStateJson(const Checkpoint& checkpoint, const std::string& key, Quant4bitState& state) {
  QLORAD_ASSIGN_OR_RETURN(at::Tensor bytes, CopyOf(checkpoint, key, DType::kU8));
  std::string text(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), bytes.numel());
  Json json = Json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object())
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' does not hold a JSON object"));
  try {
    state.blocksize = json.at("blocksize").get<int64_t>();
    state.shape = json.at("shape").get<std::vector<int64_t>>();
    QLORAD_ASSIGN_OR_RETURN(state.dtype, ParseTorchDType(json.at("dtype").get<std::string>(), key));
    if (json.contains("nested_offset")) {
      state.nested_offset = json.at("nested_offset").get<float>();
      state.nested_blocksize = json.value("nested_blocksize", kernels::kNestedBlocksize);
    }
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "': ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<LinearLayer>> QuantizedFromCheckpoint(const LinearSpec& spec, const QuantOptions& options) {
  Quant4bitState state;
  if (HasBnbState(*spec.checkpoint, spec.module)) {
    QLORAD_ASSIGN_OR_RETURN(state, ReadBnbState(*spec.checkpoint, spec.module));
    if (state.shape != std::vector<int64_t>{spec.out_features, spec.in_features})
      return absl::InvalidArgumentError(absl::StrCat("quantized weight '", spec.module, ".weight' has shape [",
                                                     state.shape[0], ", ", state.shape.size() > 1 ? state.shape[1] : 0,
                                                     "], expected [", spec.out_features, ", ", spec.in_features, "]"));
  } else {
    const std::string name = spec.module + ".weight";
    QLORAD_ASSIGN_OR_RETURN(Checkpoint::Entry entry, spec.checkpoint->Get(name));
    QLORAD_RETURN_IF_ERROR(CheckTensorShape(entry, name, {spec.out_features, spec.in_features}));
    QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*entry.file, *entry.info));
    auto quantized = Quantize4bitTensor(view, options);
    entry.file->ReleasePages(*entry.info);
    if (!quantized.ok()) return absl::Status(quantized.status().code(), absl::StrCat(name, ": ", quantized.status().message()));
    state = std::move(quantized).value();
  }
  if (!spec.device.is_cpu()) state = state.To(spec.device);
  std::optional<at::Tensor> bias;
  if (spec.has_bias) {
    QLORAD_ASSIGN_OR_RETURN(bias, LoadTensor(spec.checkpoint, spec.module + ".bias", {spec.out_features}, spec.device,
                                             spec.dtype));
  }
  QLORAD_ASSIGN_OR_RETURN(QuantizedLinear layer, QuantizedLinearImpl::FromState(std::move(state), std::move(bias)));
  return std::shared_ptr<LinearLayer>(std::make_shared<QuantizedLinearLayer>(std::move(layer)));
}

}  // namespace

QuantizedLinearLayer::QuantizedLinearLayer(QuantizedLinear layer) : layer_(register_module("quantized", std::move(layer))) {}

std::optional<StreamableWeight> QuantizedLinearLayer::Streamable() const {
  const Quant4bitState& state = layer_->state();
  const at::Tensor& bias = layer_->bias();
  if (!state.packed.device().is_cpu() || state.blocksize <= 0 || in_features() % state.blocksize != 0) return std::nullopt;
  if (bias.defined() && (!bias.device().is_cpu() || bias.scalar_type() != at::kFloat || !bias.is_contiguous()))
    return std::nullopt;
  StreamableWeight s;
  s.packed4bit = MakeView(state);
  s.bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  return s;
}

bool HasBnbState(const Checkpoint& checkpoint, const std::string& module) {
  return checkpoint.Contains(StateKey(module, kernels::QuantType::kNF4)) ||
         checkpoint.Contains(StateKey(module, kernels::QuantType::kFP4));
}

absl::StatusOr<Quant4bitState> ReadBnbState(const Checkpoint& checkpoint, const std::string& module) {
  Quant4bitState state;
  state.quant_type = checkpoint.Contains(StateKey(module, kernels::QuantType::kNF4)) ? kernels::QuantType::kNF4
                                                                                     : kernels::QuantType::kFP4;
  const std::string weight = module + ".weight";
  QLORAD_RETURN_IF_ERROR(ApplyStateJson(checkpoint, StateKey(module, state.quant_type), state));
  QLORAD_ASSIGN_OR_RETURN(state.packed, CopyOf(checkpoint, weight, DType::kU8));
  QLORAD_ASSIGN_OR_RETURN(state.quant_map, CopyOf(checkpoint, weight + ".quant_map", DType::kF32));
  const bool nested = checkpoint.Contains(weight + ".nested_absmax");
  QLORAD_ASSIGN_OR_RETURN(state.absmax, CopyOf(checkpoint, weight + ".absmax", nested ? DType::kU8 : DType::kF32));
  if (nested) {
    QLORAD_ASSIGN_OR_RETURN(state.nested_absmax, CopyOf(checkpoint, weight + ".nested_absmax", DType::kF32));
    QLORAD_ASSIGN_OR_RETURN(state.nested_quant_map, CopyOf(checkpoint, weight + ".nested_quant_map", DType::kF32));
  }
  absl::Status valid = state.Validate();
  if (!valid.ok()) return absl::Status(valid.code(), absl::StrCat("'", weight, "' (bitsandbytes 4-bit): ", valid.message()));
  return state;
}

LinearFactory MakeQuantizedLinearFactory(const QuantOptions& options) {
  return [options](const LinearSpec& spec) { return QuantizedFromCheckpoint(spec, options); };
}

QuantizedFootprint MeasureQuantizedFootprint(LlamaModel& model) {
  QuantizedFootprint footprint;
  for (const auto& module : model->modules(/*include_self=*/false)) {
    if (auto* layer = dynamic_cast<QuantizedLinearLayer*>(module.get())) {
      footprint.parameters += layer->in_features() * layer->out_features();
      footprint.bytes += layer->layer()->WeightStorageBytes();
    }
  }
  return footprint;
}

std::string DeclaredQuantization(const std::string& model_dir) {
  auto text = ReadFileToString(model_dir + "/config.json");
  if (!text.ok()) return "none";
  nlohmann::json config = nlohmann::json::parse(*text, nullptr, false);
  if (config.is_discarded() || !config.contains("quantization_config")) return "none";
  const nlohmann::json& quant = config["quantization_config"];
  if (quant.value("quant_method", "") != "bitsandbytes" || !quant.value("load_in_4bit", false)) return "none";
  return quant.value("bnb_4bit_quant_type", "nf4");
}

absl::StatusOr<LinearFactory> MakeBaseLinearFactory(const std::string& quantize, const std::string& model_dir,
                                                    QuantOptions options, bool* quantized) {
  std::optional<kernels::QuantType> type;
  if (quantize != "none") {
    QLORAD_ASSIGN_OR_RETURN(type, ParseQuantizeSetting(quantize));
  } else if (const std::string declared = DeclaredQuantization(model_dir); declared != "none") {
    QLORAD_ASSIGN_OR_RETURN(type, ParseQuantType(declared, model_dir + "/config.json bnb_4bit_quant_type"));
  }
  if (quantized != nullptr) *quantized = type.has_value();
  if (!type.has_value()) return LinearFactory();
  options.quant_type = *type;
  return MakeQuantizedLinearFactory(options);
}

}  // namespace qlorad
