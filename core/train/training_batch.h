// The trainer's batches: the seeded epoch plan (which examples form each global batch),
// the padded tensors of a set of rows (one example per row, or several packed into a
// row), the completion-token loss, and the split of a global batch across data-parallel
// ranks. Internal to core/train.
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
  // Packed only (else undefined): positions restarting at 0 in each example [B, T], and
  // the examples as segments that attend only within themselves (block-diagonal causal).
  at::Tensor positions;
  PackedSegments segments;
  // Packed only: each token's pack and column in the packs' row layout [packs, longest
  // pack] (where shard-invariant dropout draws its masks; see BatchShard::token_index).
  at::Tensor grid_rows, grid_columns;
  int64_t tokens = 0;
};

// Rows `rows` of `examples`, each cut to its last `max_len` tokens, right-padded.
Batch MakeBatch(const std::vector<TrainingExample>& examples, const std::vector<size_t>& rows, int64_t max_len);

// One packed row: the examples laid end to end in it, in order.
using Pack = std::vector<size_t>;

// First-fit packing of `rows` (in order, each cut to its last `max_len` tokens) into rows
// of at most `max_len` tokens: each example goes to the first row with room, else opens
// one. A pure function of its arguments (the planner and every rank get the same packs).
std::vector<Pack> PackRows(const std::vector<TrainingExample>& examples, const std::vector<size_t>& rows,
                           int64_t max_len);

// `packs` laid out padding-free: every example end to end in one row [1, tokens], in pack
// order (see Batch::positions/segments). Every example's loss terms, attention and
// positions equal those of MakeBatch with one example per row.
Batch MakePackedBatch(const std::vector<TrainingExample>& examples, const std::vector<Pack>& packs, int64_t max_len);

// Summed negative log-likelihood over the trained positions of `batch` (fp32 scalar);
// lm_head runs only on those positions, in row chunks (chunked_loss.h) when there are
// more than one chunk's worth.
// `chunk_rows` overrides HeadChunkRows(vocab) (tests).
at::Tensor SummedCompletionLoss(LlamaModel& model, const Batch& batch, int64_t chunk_rows = 0);

// Shuffled, then grouped so each batch holds examples of similar length. A pure function
// of the rng's state: every rank plans the same epoch.
std::vector<std::vector<size_t>> PlanEpoch(const std::vector<TrainingExample>& examples, int64_t batch_size,
                                           std::mt19937_64& rng);

// Packing's plan: shuffled, then each global batch takes examples in that order while
// PackRows can place them in at most `batch_size` rows of `max_len` tokens (so a batch
// holds about batch_size · max_len tokens, however short the examples); the batches are
// then shuffled. A pure function of the rng's state, as PlanEpoch. When every example has
// max_len / k tokens for an integer k, it equals PlanEpoch(examples, batch_size · k, rng).
std::vector<std::vector<size_t>> PlanPackedEpoch(const std::vector<TrainingExample>& examples, int64_t batch_size,
                                                 int64_t max_len, std::mt19937_64& rng);

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
