// The completion loss's vocabulary projection in row chunks: summed NLL of `targets`
// under log_softmax(head(hidden)) without a [rows, vocab] logits tensor alive at once.
// Forward keeps only `hidden` and `targets`; backward recomputes each chunk's logits, back-propagates
// through the head (its trainable parameters, e.g. a LoRA on lm_head, accumulate .grad as
// in a plain backward) and frees the chunk before the next. Costs one more head forward.
// Internal to core/train.
#ifndef QLORAD_CORE_TRAIN_CHUNKED_LOSS_H_
#define QLORAD_CORE_TRAIN_CHUNKED_LOSS_H_

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "core/model/linear.h"

namespace qlorad {

// Rows per chunk so that one chunk's fp32 logits stay near 32 MB.
int64_t HeadChunkRows(int64_t vocab);

// hidden [N, H] (grad may flow to it), targets [N] int64 on hidden's device. Returns the
// fp32 scalar sum over rows of -log p(target). Equals
// nll_loss(log_softmax(head.forward(hidden).float()), targets, sum) up to summation order.
at::Tensor ChunkedHeadNll(LinearLayer& head, const at::Tensor& hidden, const at::Tensor& targets, int64_t chunk_rows);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_CHUNKED_LOSS_H_
