#include "core/train/lora_model.h"

#include "absl/strings/str_cat.h"
#include "core/quant/nf4_model.h"
#include "core/train/fitted_base.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {
namespace {

absl::Status Named(const std::string& module, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(module, ": ", status.message()));
}

// The checkpoint's full-precision W (and bias) of spec.module, for the fitted inits.
absl::StatusOr<std::shared_ptr<LinearLayer>> FullPrecisionWeight(const LoraConfig& config, const LinearSpec& spec) {
  if (HasBnbState(*spec.checkpoint, spec.module))
    return absl::FailedPreconditionError(absl::StrCat(
        "lora.init ", config.init, " needs the full-precision weight, but the checkpoint stores it 4-bit (hint: train "
        "from the unquantized model directory with quantize nf4)"));
  return MakeDenseLinear(spec);
}

// A LoRA layer whose factors and base are fitted to W (init loftq or pissa).
absl::StatusOr<LoraLinear> FittedLora(const LoraConfig& config, const LinearSpec& spec, const LinearLayer& base,
                                      const LoraLinearOptions& options, InitErrorTally* tally) {
  QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> full, FullPrecisionWeight(config, spec));
  const auto& dense = static_cast<const DenseLinear&>(*full);
  std::optional<at::Tensor> bias;
  if (dense.bias().defined()) bias = dense.bias();
  const double scaling = config.ScalingFor(spec.module);
  const int64_t r = options.r();
  LowRankFactors factors;
  absl::StatusOr<LoraLinear> lora;
  at::Tensor plain;  // the checkpoint's W quantized as usual, for the tally
  if (const auto* quantized = dynamic_cast<const QuantizedLinearLayer*>(&base)) {
    const Quant4bitState& loaded = quantized->layer()->state();
    if (tally != nullptr) {
      QLORAD_ASSIGN_OR_RETURN(plain, Dequantize4bitTensor(loaded, at::kFloat));
    }
    Quant4bitState fitted;
    if (config.init == "loftq") {
      QLORAD_ASSIGN_OR_RETURN(LoftqInit init,
                              InitializeLoftq(dense.weight(), r, scaling, OptionsOf(loaded), config.loftq_iterations));
      factors = std::move(init.factors);
      fitted = std::move(init.base);
    } else {
      QLORAD_ASSIGN_OR_RETURN(PissaInit init, InitializePissa(dense.weight(), r, scaling));
      factors = std::move(init.factors);
      QLORAD_ASSIGN_OR_RETURN(fitted, Quantize4bitTensor(init.residual, OptionsOf(loaded)));
      fitted.dtype = dense.weight().scalar_type();
    }
    QLORAD_ASSIGN_OR_RETURN(QuantizedLinear layer, QuantizedLinearImpl::FromState(fitted.To(loaded.device()), bias));
    lora = LoraLinearImpl::Create(options, std::move(layer));
  } else if (config.init == "pissa") {
    QLORAD_ASSIGN_OR_RETURN(PissaInit init, InitializePissa(dense.weight(), r, scaling));
    factors = std::move(init.factors);
    lora = LoraLinearImpl::Create(options, init.residual.to(dense.weight().scalar_type()), bias);
  } else {
    return absl::InvalidArgumentError("lora.init: loftq needs a 4-bit base (quantize nf4|fp4)");
  }
  QLORAD_RETURN_IF_ERROR(lora.status());
  QLORAD_RETURN_IF_ERROR((*lora)->SetFactors(factors));
  if (tally != nullptr) {
    QLORAD_ASSIGN_OR_RETURN(at::Tensor fitted_base, (*lora)->BaseWeight());
    QLORAD_RETURN_IF_ERROR(CatchTorchErrors("LoRA init error", [&] {
      TallyInitError(dense.weight(), fitted_base, factors, scaling, plain, *tally);
      return absl::OkStatus();
    }));
  }
  return lora;
}

absl::StatusOr<std::shared_ptr<LinearLayer>> WrapWithLora(const LoraConfig& config, const LinearSpec& spec,
                                                          std::shared_ptr<LinearLayer> base, InitErrorTally* tally) {
  const std::string& module = spec.module;
  LoraLinearOptions options(config.RankFor(module), config.AlphaFor(module));
  options.dropout(config.dropout).use_rslora(config.use_rslora).use_dora(config.use_dora);
  if (config.init == "gaussian") options.init(LoraInit::kGaussian);
  absl::StatusOr<LoraLinear> lora = absl::InvalidArgumentError("unsupported base layer for LoRA");
  if (HasFittedBase(config)) {
    lora = FittedLora(config, spec, *base, options, tally);
  } else if (auto* quantized = dynamic_cast<QuantizedLinearLayer*>(base.get())) {
    lora = LoraLinearImpl::Create(options, quantized->layer());
  } else if (auto* dense = dynamic_cast<DenseLinear*>(base.get())) {
    std::optional<at::Tensor> bias;
    if (dense->bias().defined()) bias = dense->bias();
    lora = LoraLinearImpl::Create(options, dense->weight(), bias);
  }
  if (!lora.ok()) return Named(module, lora.status());
  return std::shared_ptr<LinearLayer>(std::make_shared<LoraLinearLayer>(std::move(lora).value()));
}

}  // namespace

LoraLinearLayer::LoraLinearLayer(LoraLinear layer) : layer_(register_module("lora", std::move(layer))) {}

std::optional<StreamableLowRank> LoraLinearLayer::StreamableAdapter() const {
  const LoraLinearImpl& lora = *layer_;
  auto fp32_cpu = [](const at::Tensor& t) {
    return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
  };
  const bool dropout_active = lora.is_training() && lora.options().dropout() > 0;
  if (!lora.adapter_enabled() || lora.lora_magnitude.defined() || dropout_active || !fp32_cpu(lora.lora_A) ||
      !fp32_cpu(lora.lora_B))
    return std::nullopt;
  // The base layers share the LoraLinear's tensors, so the pointers outlive these wrappers.
  std::optional<at::Tensor> bias;
  if (lora.dense_bias().defined()) bias = lora.dense_bias();
  const std::optional<StreamableWeight> base = lora.quantized()
                                                   ? QuantizedLinearLayer(lora.quantized_base()).Streamable()
                                                   : DenseLinear(lora.dense_weight(), bias).Streamable();
  if (!base.has_value()) return std::nullopt;
  StreamableLowRank low_rank;
  low_rank.base = *base;
  low_rank.a = lora.lora_A.data_ptr<float>();
  low_rank.b = lora.lora_B.data_ptr<float>();
  low_rank.rank = lora.lora_A.size(0);
  low_rank.scaling = static_cast<float>(lora.scaling());
  return low_rank;
}

LinearFactory MakeLoraLinearFactory(const LoraConfig& config, LinearFactory base_factory,
                                    std::shared_ptr<LoraModules> modules, std::shared_ptr<InitErrorTally> tally) {
  return [config, base_factory, modules, tally](const LinearSpec& spec) -> absl::StatusOr<std::shared_ptr<LinearLayer>> {
    QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> base, base_factory ? base_factory(spec) : MakeDenseLinear(spec));
    if (!config.Targets(spec.module)) return base;
    QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> wrapped, WrapWithLora(config, spec, std::move(base), tally.get()));
    modules->insert_or_assign(spec.module, static_cast<LoraLinearLayer*>(wrapped.get())->layer());
    return wrapped;
  };
}

absl::Status SetCheckpointKeep(LoraModules& modules, const std::string& keep) {
  QLORAD_RETURN_IF_ERROR(CheckCheckpointKeep(keep));
  for (auto& [name, layer] : modules) layer->set_checkpoint_base(CheckpointBaseFor(keep, name));
  return absl::OkStatus();
}

std::vector<at::Tensor> LoraParameters(const LoraModules& modules) {
  std::vector<at::Tensor> params;
  for (const auto& [name, layer] : modules) {
    params.push_back(layer->lora_A);
    params.push_back(layer->lora_B);
  }
  for (const auto& [name, layer] : modules)
    if (layer->lora_magnitude.defined()) params.push_back(layer->lora_magnitude);
  return params;
}

}  // namespace qlorad
