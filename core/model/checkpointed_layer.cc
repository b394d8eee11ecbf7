#include "core/model/checkpointed_layer.h"

#include <utility>
#include <vector>

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include "core/util/base_output_tape.h"
#include "core/util/training_random.h"

namespace qlorad {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The forward's kept base outputs travel in the context; an empty tape stores nothing.
void SaveTape(AutogradContext* ctx, const BaseOutputTape& tape) {
  if (tape.outputs().empty()) return;
  ctx->saved_data["base_outputs"] = tape.outputs();
  ctx->saved_data["base_owners"] = tape.owners();
  ctx->saved_data["base_versions"] = tape.versions();
}

// The replay tape for backward, taken out of the context so that each layer's kept outputs
// are freed when its backward ends (not when the whole graph is).
BaseOutputTape TakeTape(AutogradContext* ctx) {
  auto owners = ctx->saved_data.find("base_owners");
  if (owners == ctx->saved_data.end()) return BaseOutputTape({}, {}, {});
  auto outputs = ctx->saved_data.find("base_outputs");
  TORCH_CHECK(outputs != ctx->saved_data.end(),
              "gradient checkpointing with checkpoint_keep cannot run a layer's backward twice (retain_graph); "
              "hint: train with checkpoint_keep none");
  BaseOutputTape tape(outputs->second.toTensorVector(), owners->second.toIntVector(),
                      ctx->saved_data["base_versions"].toIntVector());
  ctx->saved_data.erase(outputs);
  return tape;
}

// Puts the caller's random state back on every exit (the recompute can throw).
class RestoreGeneratorState {
 public:
  explicit RestoreGeneratorState(at::Generator generator)
      : generator_(std::move(generator)), state_(generator_.get_state()) {}
  ~RestoreGeneratorState() { generator_.set_state(state_); }

 private:
  at::Generator generator_;
  at::Tensor state_;
};

struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  // inputs: x, then the layer's trainable parameters (only so that autograd calls backward).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, DecoderLayerImpl* layer,
                            const AttentionContext& context, at::TensorList params) {
    at::Generator generator = TrainingGenerator(x.device());
    ctx->saved_data["rng_state"] = generator.get_state();
    ctx->saved_data["layer"] = reinterpret_cast<int64_t>(layer);
    ctx->saved_data["cos"] = context.cos;
    ctx->saved_data["sin"] = context.sin;
    ctx->saved_data["mask"] = context.mask.defined() ? context.mask : at::Tensor();
    ctx->saved_data["has_mask"] = context.mask.defined();
    ctx->saved_data["layer_index"] = context.layer_index;
    ctx->saved_data["packed"] = context.segments.defined();
    if (context.segments.defined()) {
      std::vector<at::Tensor> gathers, attends;
      for (const PackedSegments::Group& group : context.segments.groups) {
        gathers.push_back(group.gather);
        attends.push_back(group.attend);
      }
      ctx->saved_data["segment_gathers"] = gathers;
      ctx->saved_data["segment_attends"] = attends;
      ctx->saved_data["segment_scatter"] = context.segments.scatter;
    }
    ctx->saved_data["num_params"] = static_cast<int64_t>(params.size());
    ctx->save_for_backward({x});
    BaseOutputTape tape;  // the opted-in base matmuls' outputs, replayed in backward
    at::Tensor y;
    {
      ScopedBaseOutputTape recording(&tape);
      y = layer->forward(x, context);  // autograd is off inside Function::forward
    }
    SaveTape(ctx, tape);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    AttentionContext context;
    context.cos = ctx->saved_data["cos"].toTensor();
    context.sin = ctx->saved_data["sin"].toTensor();
    if (ctx->saved_data["has_mask"].toBool()) context.mask = ctx->saved_data["mask"].toTensor();
    context.layer_index = ctx->saved_data["layer_index"].toInt();
    if (ctx->saved_data["packed"].toBool()) {
      const std::vector<at::Tensor> gathers = ctx->saved_data["segment_gathers"].toTensorVector();
      const std::vector<at::Tensor> attends = ctx->saved_data["segment_attends"].toTensorVector();
      for (size_t g = 0; g < gathers.size(); ++g) context.segments.groups.push_back({gathers[g], attends[g]});
      context.segments.scatter = ctx->saved_data["segment_scatter"].toTensor();
    }
    BaseOutputTape tape = TakeTape(ctx);
    at::Tensor y;
    {
      // Replay the forward's random stream (dropout), then give the caller's stream back.
      at::Generator generator = TrainingGenerator(x.device());
      RestoreGeneratorState restore(generator);
      generator.set_state(ctx->saved_data["rng_state"].toTensor());
      at::AutoGradMode enable(true);
      ScopedBaseOutputTape replaying(&tape);
      y = layer->forward(x, context);
    }
    TORCH_CHECK(tape.Exhausted(), "gradient checkpointing: the recompute used fewer base outputs than the forward");
    tape = BaseOutputTape({}, {}, {});  // the recompute's graph holds what it still needs
    y.backward(grad_outputs[0]);  // accumulates into the parameters' .grad and x.grad
    // One entry per forward argument slot: x, layer, context, then each parameter (their
    // gradients were accumulated by the inner backward above).
    variable_list grads = {x.grad(), at::Tensor(), at::Tensor()};
    grads.resize(3 + static_cast<size_t>(ctx->saved_data["num_params"].toInt()));
    return grads;
  }
};

}  // namespace

at::Tensor CheckpointedLayerForward(DecoderLayer& layer, const at::Tensor& x, const AttentionContext& context) {
  TORCH_CHECK(context.cache == nullptr, "gradient checkpointing is for training (no KV cache)");
  variable_list params;
  for (const at::Tensor& p : layer->parameters())
    if (p.requires_grad()) params.push_back(p);
  return CheckpointedLayer::apply(x, layer.get(), context, at::TensorList(params));
}

}  // namespace qlorad
