// Gradient checkpointing for one decoder layer, as a custom autograd function (libtorch's
// C++ API has no torch.utils.checkpoint): the forward runs without recording the graph,
// keeping only the layer input; the backward recomputes the layer's forward with the same
// random state (dropout masks are identical) and back-propagates through it, so
// activations of only one layer at a time are alive during backward.
//
// Selective recomputation: the outputs of base matmuls whose layers opt in are kept from
// the forward (core/util/base_output_tape.h) and replayed by the recompute, which then skips
// those matmuls; what they cost in memory is held from the layer's forward to its backward.
//
// Gradients of the layer's trainable parameters (the LoRA tensors) accumulate into their
// .grad like in a normal backward; they are also inputs of the function, so the output
// requires grad even when `x` does not (the first layer's input comes from a frozen table).
// Not for use with a KV cache (training only).
#ifndef QLORAD_CORE_MODEL_CHECKPOINTED_LAYER_H_
#define QLORAD_CORE_MODEL_CHECKPOINTED_LAYER_H_

#include "core/model/layers.h"

namespace qlorad {

at::Tensor CheckpointedLayerForward(DecoderLayer& layer, const at::Tensor& x, const AttentionContext& context);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_CHECKPOINTED_LAYER_H_
