// The serving engine's KV cache: one pool of fixed-size blocks per layer, shared by
// every running sequence (paged, as in vLLM). A sequence owns a list of blocks; its
// position p lives in slot blocks[p / block_size] * block_size + p % block_size.
//
// Contract:
//  * Budget: the pool has num_blocks blocks; block 0 is scratch (padding writes land
//    there and it is never handed out), so usable_blocks() = num_blocks - 1.
//  * Admission reserves the blocks a sequence may ever need (prompt + max new
//    tokens); blocks are then taken lazily as it grows, so a reserved sequence never
//    fails mid-decode and no preemption is needed. Release returns both.
//  * Not thread-safe: owned by the engine loop; counters are atomics for readers.
#ifndef QLORAD_CORE_SERVE_PAGED_KV_CACHE_H_
#define QLORAD_CORE_SERVE_PAGED_KV_CACHE_H_

#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "core/model/config.h"
#include "core/model/kv_cache.h"

namespace qlorad::serve {

// Bytes of one block across all layers (keys + values).
int64_t KvBlockBytes(const ModelConfig& config, int64_t block_size, at::ScalarType dtype);

class PagedKvPool {
 public:
  PagedKvPool(const ModelConfig& config, int64_t block_size, int64_t num_blocks, const at::TensorOptions& options);

  int64_t block_size() const { return block_size_; }
  int64_t usable_blocks() const { return num_blocks_ - 1; }
  int64_t used_blocks() const { return used_.load(); }
  int64_t reserved_blocks() const { return reserved_.load(); }
  int64_t BlocksFor(int64_t positions) const { return (positions + block_size_ - 1) / block_size_; }

  // Reserves `blocks` for a new sequence; false (nothing changes) when they do not fit.
  bool TryReserve(int64_t blocks);
  void Unreserve(int64_t blocks);
  // Takes a free block; only valid within a reservation.
  int64_t Allocate();
  void Free(int64_t block);

  // Per layer, [num_blocks * block_size, Hkv, D]: one row per slot.
  at::Tensor& keys(int64_t layer) { return keys_[layer]; }
  at::Tensor& values(int64_t layer) { return values_[layer]; }
  c10::Device device() const { return keys_.front().device(); }

 private:
  int64_t block_size_, num_blocks_;
  std::vector<at::Tensor> keys_, values_;
  std::vector<int64_t> free_;
  std::atomic<int64_t> used_{0}, reserved_{0};
};

// The blocks of one sequence and how many positions are cached.
struct SequenceBlocks {
  std::vector<int64_t> blocks;
  int64_t length = 0;    // cached positions
  int64_t reserved = 0;  // blocks reserved at admission
};

// One row of a batched forward: `new_tokens` positions appended after `seq->length`.
struct PagedRow {
  SequenceBlocks* seq = nullptr;
  int64_t new_tokens = 0;
};

// The KvStore for one forward over rows with different pasts. Built before the
// forward (allocates the blocks the new positions need, within each row's
// reservation); the rows are padded to T = max new_tokens and S = max total length.
// positions() and attend() are the ForwardInput fields that go with it. Commit()
// advances each sequence after the forward succeeded.
class PagedBatchView : public KvStore {
 public:
  PagedBatchView(PagedKvPool& pool, std::vector<PagedRow> rows);

  int64_t length() const override { return 0; }  // rows differ: positions() is explicit
  std::pair<at::Tensor, at::Tensor> Append(int64_t layer, const at::Tensor& k, const at::Tensor& v) override;
  void Advance(int64_t) override {}

  const at::Tensor& positions() const { return positions_; }  // [B, T] int64
  const at::Tensor& attend() const { return attend_; }        // bool [B, 1, T, S]
  int64_t padded_tokens() const { return tokens_; }
  void Commit();

 private:
  PagedKvPool& pool_;
  std::vector<PagedRow> rows_;
  int64_t tokens_ = 0, keys_ = 0;
  at::Tensor write_slots_;  // [B * T] (padding -> scratch slots)
  at::Tensor read_slots_;   // [B * S] (padding -> scratch slots)
  at::Tensor positions_, attend_;
};

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_PAGED_KV_CACHE_H_
