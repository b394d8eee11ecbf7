#include "core/model/loader.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model/fingerprint.h"
#include "core/model/tensor_io.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad {
namespace {

class LayerBuilder {
 public:
  LayerBuilder(const ModelConfig& config, std::shared_ptr<const Checkpoint> checkpoint, const LoadOptions& options,
               at::ScalarType dtype)
      : config_(config), checkpoint_(std::move(checkpoint)), options_(options), dtype_(dtype) {}

  absl::StatusOr<at::Tensor> Tensor(const std::string& name, std::vector<int64_t> shape) const {
    return LoadTensor(checkpoint_, name, shape, options_.device, dtype_);
  }

  absl::StatusOr<std::shared_ptr<LinearLayer>> Linear(const std::string& module, int64_t out, int64_t in,
                                                      bool has_bias) const {
    LinearSpec spec{checkpoint_, module, out, in, has_bias, options_.device, dtype_};
    const LinearFactory& factory = options_.linear_factory ? options_.linear_factory : MakeDenseLinear;
    return CatchTorchErrors(absl::StrCat("building ", module), [&] { return factory(spec); });
  }

  absl::StatusOr<RMSNorm> Norm(const std::string& name) const {
    QLORAD_ASSIGN_OR_RETURN(at::Tensor weight, Tensor(name, {config_.hidden_size}));
    return RMSNorm(weight, config_.rms_norm_eps);
  }

  absl::StatusOr<DecoderLayer> Layer(int64_t index) const {
    const std::string prefix = absl::StrCat("model.layers.", index, ".");
    const ModelConfig& c = config_;
    const int64_t q_out = c.num_attention_heads * c.head_dim, kv_out = c.num_key_value_heads * c.head_dim;
    AttentionImpl::Projections attn;
    QLORAD_ASSIGN_OR_RETURN(attn.q, Linear(prefix + "self_attn.q_proj", q_out, c.hidden_size, c.attention_bias));
    QLORAD_ASSIGN_OR_RETURN(attn.k, Linear(prefix + "self_attn.k_proj", kv_out, c.hidden_size, c.attention_bias));
    QLORAD_ASSIGN_OR_RETURN(attn.v, Linear(prefix + "self_attn.v_proj", kv_out, c.hidden_size, c.attention_bias));
    QLORAD_ASSIGN_OR_RETURN(attn.o, Linear(prefix + "self_attn.o_proj", c.hidden_size, q_out, c.o_proj_bias));
    MlpImpl::Projections mlp;
    QLORAD_ASSIGN_OR_RETURN(mlp.gate, Linear(prefix + "mlp.gate_proj", c.intermediate_size, c.hidden_size, false));
    QLORAD_ASSIGN_OR_RETURN(mlp.up, Linear(prefix + "mlp.up_proj", c.intermediate_size, c.hidden_size, false));
    QLORAD_ASSIGN_OR_RETURN(mlp.down, Linear(prefix + "mlp.down_proj", c.hidden_size, c.intermediate_size, false));
    QLORAD_ASSIGN_OR_RETURN(RMSNorm input_norm, Norm(prefix + "input_layernorm.weight"));
    QLORAD_ASSIGN_OR_RETURN(RMSNorm post_norm, Norm(prefix + "post_attention_layernorm.weight"));
    return CatchTorchErrors(absl::StrCat("building layer ", index), [&]() -> absl::StatusOr<DecoderLayer> {
      return DecoderLayer(input_norm, Attention(config_, std::move(attn)), post_norm, Mlp(std::move(mlp)));
    });
  }

 private:
  const ModelConfig& config_;
  std::shared_ptr<const Checkpoint> checkpoint_;
  const LoadOptions& options_;
  at::ScalarType dtype_;
};

absl::StatusOr<LlamaModel> BuildModel(const ModelConfig& config, const LayerBuilder& builder,
                                      const LoadOptions& options) {
  QLORAD_ASSIGN_OR_RETURN(at::Tensor embed, builder.Tensor("model.embed_tokens.weight", {config.vocab_size, config.hidden_size}));
  std::vector<DecoderLayer> layers;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    QLORAD_ASSIGN_OR_RETURN(DecoderLayer layer, builder.Layer(i));
    layers.push_back(std::move(layer));
  }
  QLORAD_ASSIGN_OR_RETURN(RMSNorm norm, builder.Norm("model.norm.weight"));
  std::shared_ptr<LinearLayer> lm_head;
  if (config.tie_word_embeddings) {
    lm_head = std::make_shared<DenseLinear>(embed, std::nullopt);  // shares storage with the embeddings
  } else {
    QLORAD_ASSIGN_OR_RETURN(at::Tensor head, builder.Tensor("lm_head.weight", {config.vocab_size, config.hidden_size}));
    lm_head = std::make_shared<DenseLinear>(head, std::nullopt);
  }
  return CatchTorchErrors("building model", [&]() -> absl::StatusOr<LlamaModel> {
    return LlamaModel(config, embed, std::move(layers), norm, lm_head, options.device);
  });
}

}  // namespace

absl::StatusOr<std::shared_ptr<LinearLayer>> MakeDenseLinear(const LinearSpec& spec) {
  QLORAD_ASSIGN_OR_RETURN(at::Tensor weight, LoadTensor(spec.checkpoint, spec.module + ".weight",
                                                        {spec.out_features, spec.in_features}, spec.device, spec.dtype));
  std::optional<at::Tensor> bias;
  if (spec.has_bias) {
    QLORAD_ASSIGN_OR_RETURN(bias, LoadTensor(spec.checkpoint, spec.module + ".bias", {spec.out_features}, spec.device,
                                             spec.dtype));
  }
  return std::shared_ptr<LinearLayer>(std::make_shared<DenseLinear>(std::move(weight), std::move(bias)));
}

std::pair<int64_t, int64_t> LinearModuleShape(const ModelConfig& config, const std::string& module) {
  const int64_t hidden = config.hidden_size, inter = config.intermediate_size;
  const int64_t q = config.num_attention_heads * config.head_dim, kv = config.num_key_value_heads * config.head_dim;
  if (absl::EndsWith(module, "q_proj")) return {q, hidden};
  if (absl::EndsWith(module, "k_proj") || absl::EndsWith(module, "v_proj")) return {kv, hidden};
  if (absl::EndsWith(module, "o_proj")) return {hidden, q};
  if (absl::EndsWith(module, "down_proj")) return {hidden, inter};
  return {inter, hidden};  // gate_proj, up_proj
}

std::vector<std::string> LayerLinearModules(int64_t index) {
  std::vector<std::string> modules;
  for (const char* name : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
    modules.push_back(absl::StrCat("model.layers.", index, ".", name));
  return modules;
}

absl::StatusOr<LoadedModel> LoadModel(const std::string& model_dir, const LoadOptions& options) {
  LoadedModel loaded;
  loaded.model_dir = model_dir;
  QLORAD_ASSIGN_OR_RETURN(loaded.config, LoadModelConfig(model_dir));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(model_dir));
  loaded.checkpoint = std::move(checkpoint);
  if (options.compute_fingerprint) {
    QLORAD_ASSIGN_OR_RETURN(loaded.fingerprint, ModelFingerprint(model_dir, loaded.config, *loaded.checkpoint));
  }
  at::ScalarType dtype = options.dtype.value_or(options.device.is_cuda() ? at::kBFloat16 : at::kFloat);
  LayerBuilder builder(loaded.config, loaded.checkpoint, options, dtype);
  QLORAD_ASSIGN_OR_RETURN(loaded.model, BuildModel(loaded.config, builder, options));
  loaded.model->eval();
  return loaded;
}

}  // namespace qlorad
