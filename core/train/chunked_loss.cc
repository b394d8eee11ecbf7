#include "core/train/chunked_loss.h"

#include <algorithm>

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include "core/util/training_random.h"

namespace qlorad {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor ChunkNll(LinearLayer& head, const at::Tensor& hidden, const at::Tensor& targets) {
  at::Tensor logits = head.forward(hidden).to(at::kFloat);
  return at::nll_loss(at::log_softmax(logits, -1), targets, {}, at::Reduction::Sum);
}

struct ChunkedNll : public torch::autograd::Function<ChunkedNll> {
  // inputs: hidden, then the head's trainable parameters (so that autograd calls backward
  // even when hidden needs no gradient).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, LinearLayer* head,
                            const at::Tensor& targets, int64_t chunk_rows, at::TensorList params) {
    ctx->saved_data["rng_state"] = TrainingGenerator(hidden.device()).get_state();  // dropout in a LoRA head
    ctx->saved_data["head"] = reinterpret_cast<int64_t>(head);
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["num_params"] = static_cast<int64_t>(params.size());
    ctx->save_for_backward({hidden, targets});
    at::Tensor total = at::zeros({}, hidden.options().dtype(at::kFloat));
    for (int64_t start = 0; start < hidden.size(0); start += chunk_rows) {
      const int64_t end = std::min(hidden.size(0), start + chunk_rows);
      total += ChunkNll(*head, hidden.slice(0, start, end), targets.slice(0, start, end));
    }
    return total;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& hidden = saved[0];
    const at::Tensor& targets = saved[1];
    auto* head = reinterpret_cast<LinearLayer*>(ctx->saved_data["head"].toInt());
    const int64_t chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    at::Tensor grad_hidden = at::empty_like(hidden);
    at::Generator generator = TrainingGenerator(hidden.device());
    at::Tensor current = generator.get_state();
    generator.set_state(ctx->saved_data["rng_state"].toTensor());  // the forward's chunks, in its order
    for (int64_t start = 0; start < hidden.size(0); start += chunk_rows) {
      const int64_t end = std::min(hidden.size(0), start + chunk_rows);
      at::Tensor chunk = hidden.slice(0, start, end).detach().requires_grad_(true);
      {
        at::AutoGradMode enable(true);
        ChunkNll(*head, chunk, targets.slice(0, start, end)).backward(grad_outputs[0]);
      }
      grad_hidden.slice(0, start, end).copy_(chunk.grad());
    }
    generator.set_state(current);
    // One entry per forward argument: hidden, head, targets, chunk_rows, then each parameter
    // (their gradients were accumulated by the inner backward calls).
    variable_list grads = {grad_hidden, at::Tensor(), at::Tensor(), at::Tensor()};
    grads.resize(4 + static_cast<size_t>(ctx->saved_data["num_params"].toInt()));
    return grads;
  }
};

}  // namespace

int64_t HeadChunkRows(int64_t vocab) { return std::max<int64_t>(16, (int64_t{8} << 20) / std::max<int64_t>(vocab, 1)); }

at::Tensor ChunkedHeadNll(LinearLayer& head, const at::Tensor& hidden, const at::Tensor& targets, int64_t chunk_rows) {
  variable_list params;
  for (const at::Tensor& p : head.parameters())
    if (p.requires_grad()) params.push_back(p);
  return ChunkedNll::apply(hidden, &head, targets, chunk_rows, at::TensorList(params));
}

}  // namespace qlorad
