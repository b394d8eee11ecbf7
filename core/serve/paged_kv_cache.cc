#include "core/serve/paged_kv_cache.h"

#include <algorithm>

namespace qlorad::serve {

int64_t KvBlockBytes(const ModelConfig& config, int64_t block_size, at::ScalarType dtype) {
  return 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * block_size *
         static_cast<int64_t>(c10::elementSize(dtype));
}

PagedKvPool::PagedKvPool(const ModelConfig& config, int64_t block_size, int64_t num_blocks,
                         const at::TensorOptions& options)
    : block_size_(block_size), num_blocks_(std::max<int64_t>(num_blocks, 2)) {
  const std::vector<int64_t> shape = {num_blocks_ * block_size_, config.num_key_value_heads, config.head_dim};
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    keys_.push_back(at::zeros(shape, options));
    values_.push_back(at::zeros(shape, options));
  }
  for (int64_t block = num_blocks_ - 1; block >= 1; --block) free_.push_back(block);  // block 0 = scratch
}

bool PagedKvPool::TryReserve(int64_t blocks) {
  if (reserved_.load() + blocks > usable_blocks()) return false;
  reserved_ += blocks;
  return true;
}

void PagedKvPool::Unreserve(int64_t blocks) { reserved_ -= blocks; }

int64_t PagedKvPool::Allocate() {
  TORCH_CHECK(!free_.empty(), "KV pool exhausted inside a reservation (engine bug)");
  const int64_t block = free_.back();
  free_.pop_back();
  ++used_;
  return block;
}

void PagedKvPool::Free(int64_t block) {
  free_.push_back(block);
  --used_;
}

PagedBatchView::PagedBatchView(PagedKvPool& pool, std::vector<PagedRow> rows) : pool_(pool), rows_(std::move(rows)) {
  const int64_t batch = static_cast<int64_t>(rows_.size()), bs = pool_.block_size();
  for (const PagedRow& row : rows_) {
    tokens_ = std::max(tokens_, row.new_tokens);
    keys_ = std::max(keys_, row.seq->length + row.new_tokens);
    while (static_cast<int64_t>(row.seq->blocks.size()) < pool_.BlocksFor(row.seq->length + row.new_tokens)) {
      TORCH_CHECK(static_cast<int64_t>(row.seq->blocks.size()) < row.seq->reserved, "sequence grew past its KV reservation");
      row.seq->blocks.push_back(pool_.Allocate());
    }
  }
  auto slot = [&](const SequenceBlocks& seq, int64_t position) { return seq.blocks[position / bs] * bs + position % bs; };
  std::vector<int64_t> write(batch * tokens_), read(batch * keys_), positions(batch * tokens_);
  auto attend = at::zeros({batch, 1, tokens_, keys_}, at::kBool);
  auto mask = attend.accessor<bool, 4>();
  for (int64_t b = 0; b < batch; ++b) {
    const SequenceBlocks& seq = *rows_[b].seq;
    const int64_t past = seq.length, n = rows_[b].new_tokens, total = past + n;
    for (int64_t t = 0; t < tokens_; ++t) {
      const bool real = t < n;
      write[b * tokens_ + t] = real ? slot(seq, past + t) : t % bs;  // padding -> scratch block 0
      positions[b * tokens_ + t] = past + std::min(t, n - 1);
      const int64_t last_key = past + std::min(t, n - 1);  // padding queries repeat the last real one
      for (int64_t j = 0; j <= last_key; ++j) mask[b][0][t][j] = true;
    }
    for (int64_t j = 0; j < keys_; ++j) read[b * keys_ + j] = j < total ? slot(seq, j) : j % bs;
  }
  auto long_options = at::TensorOptions().dtype(at::kLong);
  write_slots_ = at::tensor(write, long_options).to(pool_.device());
  read_slots_ = at::tensor(read, long_options).to(pool_.device());
  positions_ = at::tensor(positions, long_options).view({batch, tokens_});
  attend_ = attend.to(pool_.device());
}

std::pair<at::Tensor, at::Tensor> PagedBatchView::Append(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  const int64_t batch = k.size(0), heads = k.size(1), dim = k.size(3);
  auto flat = [&](const at::Tensor& x) { return x.transpose(1, 2).reshape({batch * tokens_, heads, dim}); };
  pool_.keys(layer).index_copy_(0, write_slots_, flat(k));
  pool_.values(layer).index_copy_(0, write_slots_, flat(v));
  auto gather = [&](const at::Tensor& pool) {
    return pool.index_select(0, read_slots_).view({batch, keys_, heads, dim}).transpose(1, 2);
  };
  return {gather(pool_.keys(layer)), gather(pool_.values(layer))};
}

void PagedBatchView::Commit() {
  for (PagedRow& row : rows_) row.seq->length += row.new_tokens;
}

}  // namespace qlorad::serve
