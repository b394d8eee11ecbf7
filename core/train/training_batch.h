// The trainer's batches: the seeded epoch plan (which examples form each global batch),
// the padded tensors of a set of rows, the completion-token loss, and the split of a
// global batch across data-parallel ranks. Internal to core/train.
#ifndef QLORAD_CORE_TRAIN_TRAINING_BATCH_H_
#define QLORAD_CORE_TRAIN_TRAINING_BATCH_H_

#include <cstdint>
#include <random>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/model/llama.h"
#include "core/train/trainer.h"

namespace qlorad {

struct Batch {
  at::Tensor ids, mask, targets, weights;  // [B, T]; weights = 1 on trained target positions
  int64_t tokens = 0;
};

// Rows `rows` of `examples`, each cut to its last `max_len` tokens, right-padded.
Batch MakeBatch(const std::vector<TrainingExample>& examples, const std::vector<size_t>& rows, int64_t max_len);

// Summed negative log-likelihood over the trained positions of `batch` (fp32 scalar);
// lm_head runs only on those positions.
at::Tensor SummedCompletionLoss(LlamaModel& model, const Batch& batch);

// Shuffled, then grouped so each batch holds examples of similar length. A pure function
// of the rng's state: every rank plans the same epoch.
std::vector<std::vector<size_t>> PlanEpoch(const std::vector<TrainingExample>& examples, int64_t batch_size,
                                           std::mt19937_64& rng);

// What every rank knows of one global batch without communicating.
struct GlobalBatchFacts {
  int64_t trained_positions = 0;  // the loss's denominator
  int64_t tokens = 0;             // tokens after truncation
  int64_t padded_len = 0;
};
GlobalBatchFacts FactsOf(const std::vector<TrainingExample>& examples, const std::vector<size_t>& rows,
                         int64_t max_len);

// Rank `rank`'s contiguous share of `rows` (ceil(n / world) rows; the last ranks may get
// fewer or none), and the index of its first row.
std::vector<size_t> ShardRows(const std::vector<size_t>& rows, int rank, int world_size, int64_t* first_row);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_TRAINING_BATCH_H_
