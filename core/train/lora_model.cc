#include "core/train/lora_model.h"

#include "absl/strings/str_cat.h"
#include "core/quant/nf4_model.h"
#include "core/util/status_macros.h"

namespace qlorad {
namespace {

absl::StatusOr<std::shared_ptr<LinearLayer>> WrapWithLora(const LoraConfig& config, const std::string& module,
                                                          std::shared_ptr<LinearLayer> base) {
  LoraLinearOptions options(config.RankFor(module), config.AlphaFor(module));
  options.dropout(config.dropout).use_rslora(config.use_rslora);
  absl::StatusOr<LoraLinear> lora = absl::InvalidArgumentError("unsupported base layer for LoRA: " + module);
  if (auto* quantized = dynamic_cast<QuantizedLinearLayer*>(base.get())) {
    lora = LoraLinearImpl::Create(options, quantized->layer());
  } else if (auto* dense = dynamic_cast<DenseLinear*>(base.get())) {
    std::optional<at::Tensor> bias;
    if (dense->bias().defined()) bias = dense->bias();
    lora = LoraLinearImpl::Create(options, dense->weight(), bias);
  }
  if (!lora.ok()) return absl::Status(lora.status().code(), absl::StrCat(module, ": ", lora.status().message()));
  return std::shared_ptr<LinearLayer>(std::make_shared<LoraLinearLayer>(std::move(lora).value()));
}

}  // namespace

LoraLinearLayer::LoraLinearLayer(LoraLinear layer) : layer_(register_module("lora", std::move(layer))) {}

LinearFactory MakeLoraLinearFactory(const LoraConfig& config, LinearFactory base_factory,
                                    std::shared_ptr<LoraModules> modules) {
  return [config, base_factory, modules](const LinearSpec& spec) -> absl::StatusOr<std::shared_ptr<LinearLayer>> {
    QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> base, base_factory ? base_factory(spec) : MakeDenseLinear(spec));
    if (!config.Targets(spec.module)) return base;
    QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<LinearLayer> wrapped, WrapWithLora(config, spec.module, std::move(base)));
    modules->insert_or_assign(spec.module, static_cast<LoraLinearLayer*>(wrapped.get())->layer());
    return wrapped;
  };
}

std::vector<at::Tensor> LoraParameters(const LoraModules& modules) {
  std::vector<at::Tensor> params;
  for (const auto& [name, layer] : modules) {
    params.push_back(layer->lora_A);
    params.push_back(layer->lora_B);
  }
  return params;
}

}  // namespace qlorad
