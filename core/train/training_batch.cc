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
               Zeros(rows, len, at::kFloat), packed ? Zeros(rows, len, at::kLong) : at::Tensor(), {}, {}, {}, 0},
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

namespace {

struct Span {
  int64_t start = 0, length = 0;  // an example's columns in the packed row
};

// attend [n, 1, L, L] of a PackedSegments group for examples of `lengths` tokens.
at::Tensor SegmentAttend(const std::vector<int64_t>& lengths, int64_t longest) {
  const auto long_options = at::TensorOptions().dtype(at::kLong);
  const at::Tensor index = at::arange(longest, long_options);
  const at::Tensor causal = index.unsqueeze(1).ge(index.unsqueeze(0));                             // [L, L]
  const at::Tensor valid = index.unsqueeze(0).lt(at::tensor(lengths, long_options).unsqueeze(1));  // [n, L]
  const at::Tensor self = at::eye(longest, at::TensorOptions().dtype(at::kBool));
  return ((causal.unsqueeze(0) & valid.unsqueeze(1)) | self.unsqueeze(0)).unsqueeze(1);
}

// Examples grouped by length for attention: sorted, a new group whenever an example is
// longer than max(1.5 × the group's shortest, shortest + 16), so a group's padded area
// stays near its real one with a handful of groups. Fills `scatter` ([tokens]).
PackedSegments GroupSegments(const std::vector<Span>& spans, at::Tensor scatter) {
  std::vector<size_t> order;
  for (size_t e = 0; e < spans.size(); ++e)
    if (spans[e].length > 0) order.push_back(e);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return spans[a].length < spans[b].length; });
  PackedSegments segments;
  auto scatters = scatter.accessor<int64_t, 1>();
  int64_t offset = 0;  // the group's first row in the concatenated outputs
  for (size_t begin = 0; begin < order.size();) {
    const int64_t shortest = spans[order[begin]].length;
    size_t end = begin;
    while (end < order.size() && spans[order[end]].length <= std::max(shortest * 3 / 2, shortest + 16)) ++end;
    const int64_t n = static_cast<int64_t>(end - begin), longest = spans[order[end - 1]].length;
    at::Tensor gather = at::zeros({n, longest}, at::TensorOptions().dtype(at::kLong));
    auto gathers = gather.accessor<int64_t, 2>();
    std::vector<int64_t> lengths;
    for (int64_t i = 0; i < n; ++i) {
      const Span& span = spans[order[begin + i]];
      for (int64_t t = 0; t < span.length; ++t) {
        gathers[i][t] = span.start + t;
        scatters[span.start + t] = offset + i * longest + t;
      }
      lengths.push_back(span.length);
    }
    segments.groups.push_back({gather, SegmentAttend(lengths, longest)});
    offset += n * longest;
    begin = end;
  }
  segments.scatter = scatter;
  return segments;
}

}  // namespace

Batch MakePackedBatch(const std::vector<TrainingExample>& examples, const std::vector<Pack>& packs, int64_t max_len) {
  int64_t total = 0;
  for (const Pack& pack : packs)
    for (size_t r : pack) total += TruncatedLength(examples[r], max_len);
  BatchWriter writer(1, std::max<int64_t>(total, 1), /*packed=*/true);
  Batch& batch = writer.batch();
  if (total == 0) return std::move(batch);
  const auto long_options = at::TensorOptions().dtype(at::kLong);
  batch.grid_rows = at::empty({total}, long_options);
  batch.grid_columns = at::empty({total}, long_options);
  auto positions = batch.positions.accessor<int64_t, 2>();
  auto grid_rows = batch.grid_rows.accessor<int64_t, 1>(), grid_columns = batch.grid_columns.accessor<int64_t, 1>();
  std::vector<Span> spans;
  int64_t col = 0;
  for (size_t p = 0; p < packs.size(); ++p) {
    int64_t pack_col = 0;
    for (size_t r : packs[p]) {
      spans.push_back({col, writer.Write(examples[r], max_len, 0, col)});
      for (int64_t t = 0; t < spans.back().length; ++t, ++col, ++pack_col) {
        positions[0][col] = t;
        grid_rows[col] = static_cast<int64_t>(p);
        grid_columns[col] = pack_col;
      }
    }
  }
  batch.segments = GroupSegments(spans, at::empty({total}, long_options));
  return std::move(batch);
}

at::Tensor SummedCompletionLoss(LlamaModel& model, const Batch& batch, int64_t chunk_rows) {
  const c10::Device device = model->device();
  ForwardInput input{batch.ids.to(device), {}, batch.mask.to(device), nullptr};
  if (batch.positions.defined()) {  // packed: the trainer checked max_seq_len against the context limit
    input.positions = batch.positions.to(device);
    input.segments = batch.segments;  // moved to the device by the model
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
