#include "core/train/training_batch.h"

#include <algorithm>
#include <numeric>

#include <ATen/Functions.h>

#include "core/train/chunked_loss.h"

namespace qlorad {

namespace {

int64_t TruncatedLength(const TrainingExample& ex, int64_t max_len) {
  return std::min<int64_t>(static_cast<int64_t>(ex.ids.size()), max_len);
}

// Adds `length` tokens to the first row of `used` with room (`capacity`), else opens a row
// while there are fewer than `max_rows`. Returns the row, or -1 when neither is possible.
int64_t FirstFit(std::vector<int64_t>& used, int64_t length, int64_t capacity, size_t max_rows) {
  for (size_t r = 0; r < used.size(); ++r)
    if (used[r] + length <= capacity) {
      used[r] += length;
      return static_cast<int64_t>(r);
    }
  if (used.size() >= max_rows) return -1;
  used.push_back(length);
  return static_cast<int64_t>(used.size()) - 1;
}

// A zeroed [rows, len] batch (positions too when `packed`) and one writer of examples into
// it, for both layouts.
class BatchWriter {
 public:
  BatchWriter(int64_t rows, int64_t len, bool packed)
      : batch_{Zeros(rows, len, at::kLong), Zeros(rows, len, at::kLong), Zeros(rows, len, at::kLong),
               Zeros(rows, len, at::kFloat), packed ? Zeros(rows, len, at::kLong) : at::Tensor(), {}, 0},
        ids_(batch_.ids.accessor<int64_t, 2>()),
        mask_(batch_.mask.accessor<int64_t, 2>()),
        targets_(batch_.targets.accessor<int64_t, 2>()),
        weights_(batch_.weights.accessor<float, 2>()) {}

  // Writes the last `max_len` tokens of `ex` into `row` from column `col`: ids, mask, and
  // as each position's target the next token of the same example (weight 1 where
  // trainable). Returns the tokens written.
  int64_t Write(const TrainingExample& ex, int64_t max_len, int64_t row, int64_t col) {
    const int64_t kept = TruncatedLength(ex, max_len), skip = static_cast<int64_t>(ex.ids.size()) - kept;
    for (int64_t t = 0; t < kept; ++t) {
      ids_[row][col + t] = ex.ids[skip + t];
      mask_[row][col + t] = 1;
      if (t + 1 < kept) {
        targets_[row][col + t] = ex.ids[skip + t + 1];
        weights_[row][col + t] = ex.trainable[skip + t + 1] ? 1.0f : 0.0f;
      }
    }
    batch_.tokens += kept;
    return kept;
  }

  Batch& batch() { return batch_; }

 private:
  static at::Tensor Zeros(int64_t rows, int64_t len, at::ScalarType type) {
    return at::zeros({rows, len}, at::TensorOptions().dtype(type));
  }

  Batch batch_;
  at::TensorAccessor<int64_t, 2> ids_, mask_, targets_;
  at::TensorAccessor<float, 2> weights_;
};

}  // namespace

Batch MakeBatch(const std::vector<TrainingExample>& examples, const std::vector<size_t>& rows, int64_t max_len) {
  int64_t len = 0;
  for (size_t r : rows) len = std::max(len, TruncatedLength(examples[r], max_len));
  BatchWriter writer(static_cast<int64_t>(rows.size()), len, /*packed=*/false);
  for (size_t i = 0; i < rows.size(); ++i) writer.Write(examples[rows[i]], max_len, static_cast<int64_t>(i), 0);
  return std::move(writer.batch());
}

std::vector<Pack> PackRows(const std::vector<TrainingExample>& examples, const std::vector<size_t>& rows,
                           int64_t max_len) {
  std::vector<Pack> packs;
  std::vector<int64_t> used;
  for (size_t r : rows) {
    const int64_t row = FirstFit(used, TruncatedLength(examples[r], max_len), max_len, rows.size());
    if (row == static_cast<int64_t>(packs.size())) packs.emplace_back();
    packs[row].push_back(r);
  }
  return packs;
}

Batch MakePackedBatch(const std::vector<TrainingExample>& examples, const std::vector<Pack>& packs, int64_t max_len) {
  int64_t len = 1;
  for (const Pack& pack : packs) {
    int64_t n = 0;
    for (size_t r : pack) n += TruncatedLength(examples[r], max_len);
    len = std::max(len, n);
  }
  const int64_t b = static_cast<int64_t>(packs.size());
  BatchWriter writer(b, len, /*packed=*/true);
  Batch& batch = writer.batch();
  at::Tensor segment = at::full({b, len}, -1, at::TensorOptions().dtype(at::kLong));
  auto positions = batch.positions.accessor<int64_t, 2>();
  auto segments = segment.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    int64_t col = 0;
    for (size_t k = 0; k < packs[i].size(); ++k) {
      const int64_t kept = writer.Write(examples[packs[i][k]], max_len, i, col);
      for (int64_t t = 0; t < kept; ++t, ++col) {
        positions[i][col] = t;
        segments[i][col] = static_cast<int64_t>(k);
      }
    }
  }
  at::Tensor same = segment.unsqueeze(2).eq(segment.unsqueeze(1)) & segment.ge(0).unsqueeze(2);
  at::Tensor causal = at::ones({len, len}, at::TensorOptions().dtype(at::kBool)).tril();
  at::Tensor self = at::eye(len, at::TensorOptions().dtype(at::kBool));
  batch.attend = ((same & causal) | self).unsqueeze(1);
  return std::move(batch);
}

at::Tensor SummedCompletionLoss(LlamaModel& model, const Batch& batch, int64_t chunk_rows) {
  const c10::Device device = model->device();
  ForwardInput input{batch.ids.to(device), {}, batch.mask.to(device), nullptr};
  if (batch.attend.defined()) {  // packed: the trainer checked max_seq_len against the context limit
    input.positions = batch.positions.to(device);
    input.attend = batch.attend.to(device);
  }
  at::Tensor hidden = model->Hidden(input);
  at::Tensor rows = batch.weights.flatten().nonzero().squeeze(1).to(device);
  if (rows.numel() == 0) return hidden.sum().mul(0.0).to(at::kFloat);  // truncation left nothing to train on
  at::Tensor picked_hidden = hidden.flatten(0, 1).index_select(0, rows);
  at::Tensor targets = batch.targets.flatten().to(device).index_select(0, rows);
  if (chunk_rows <= 0) chunk_rows = HeadChunkRows(model->config().vocab_size);
  if (rows.numel() > chunk_rows) return ChunkedHeadNll(model->lm_head(), picked_hidden, targets, chunk_rows);
  at::Tensor logits = model->lm_head().forward(picked_hidden).to(at::kFloat);
  return at::nll_loss(at::log_softmax(logits, -1), targets, {}, at::Reduction::Sum);
}

std::vector<std::vector<size_t>> PlanEpoch(const std::vector<TrainingExample>& examples, int64_t batch_size,
                                           std::mt19937_64& rng) {
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t window = static_cast<size_t>(batch_size) * 16;
  for (size_t start = 0; start < order.size(); start += window) {
    auto end = order.begin() + std::min(order.size(), start + window);
    std::stable_sort(order.begin() + start, end,
                     [&](size_t a, size_t b) { return examples[a].ids.size() < examples[b].ids.size(); });
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t start = 0; start < order.size(); start += batch_size)
    batches.emplace_back(order.begin() + start, order.begin() + std::min(order.size(), start + batch_size));
  std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

std::vector<std::vector<size_t>> PlanPackedEpoch(const std::vector<TrainingExample>& examples, int64_t batch_size,
                                                 int64_t max_len, std::mt19937_64& rng) {
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<std::vector<size_t>> batches(1);
  std::vector<int64_t> used;
  for (size_t r : order) {
    const int64_t length = TruncatedLength(examples[r], max_len);
    if (FirstFit(used, length, max_len, static_cast<size_t>(batch_size)) < 0) {
      batches.emplace_back();
      used.assign(1, length);
    }
    batches.back().push_back(r);
  }
  if (batches.back().empty()) batches.pop_back();
  std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

GlobalBatchFacts FactsOf(const std::vector<TrainingExample>& examples, const std::vector<size_t>& rows,
                         int64_t max_len) {
  GlobalBatchFacts facts;
  for (size_t r : rows) {
    const TrainingExample& ex = examples[r];
    const int64_t n = static_cast<int64_t>(ex.ids.size()), skip = std::max<int64_t>(0, n - max_len);
    for (int64_t t = skip + 1; t < n; ++t) facts.trained_positions += ex.trainable[t] ? 1 : 0;
    facts.tokens += n - skip;
    facts.padded_len = std::max(facts.padded_len, n - skip);
  }
  return facts;
}

std::vector<size_t> ShardRows(const std::vector<size_t>& rows, int rank, int world_size, int64_t* first_row) {
  const size_t per_rank = (rows.size() + world_size - 1) / world_size;
  const size_t begin = std::min(rows.size(), per_rank * rank), end = std::min(rows.size(), begin + per_rank);
  *first_row = static_cast<int64_t>(begin);
  return std::vector<size_t>(rows.begin() + begin, rows.begin() + end);
}

}  // namespace qlorad
