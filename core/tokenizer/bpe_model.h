// The BPE model of HF tokenizers (tokenizer.json "model": {"type": "BPE"}):
// vocab + ranked merges, applied to one pre-token ("word") at a time exactly as
// tokenizers' `Word::merge_all` does it: a min-heap of candidate merges ordered by
// (rank, position), stale entries skipped, so a long word costs O(n log n), not O(n²).
// Supports byte_fallback (`<0xNN>` tokens), unk_token/fuse_unk,
// continuing_subword_prefix, end_of_word_suffix and ignore_merges. Dropout is
// rejected at load (it makes encoding non-deterministic).
// Thread-safe after construction; a bounded cache of short words is shared and
// guarded by a mutex.
#ifndef QLORAD_CORE_TOKENIZER_BPE_MODEL_H_
#define QLORAD_CORE_TOKENIZER_BPE_MODEL_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <nlohmann/json_fwd.hpp>

namespace qlorad::tokenizer {

// Token ids (vocab and added tokens) must lie in [0, kMaxTokenId): they index dense
// id -> token tables, and 4M entries bound those to ~128 MB whatever a file claims.
inline constexpr int64_t kMaxTokenId = int64_t{1} << 22;

class BpeModel {
 public:
  // Builds from the "model" object of a tokenizer.json. Errors name the field
  // (e.g. "model.merges[12]: token 'ab' not in vocab").
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  // Appends the ids of `word` (valid UTF-8) to `out`. Fails only if a character
  // is neither in the vocab nor covered by byte_fallback and there is no unk_token.
  absl::Status Tokenize(std::string_view word, std::vector<int32_t>* out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // nullptr if `id` is not in the vocab.
  const std::string* IdToToken(int32_t id) const;
  // Number of ids in the vocab (max id + 1).
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  BpeModel() = default;
  void MergeWord(std::string_view word, std::vector<int32_t>* out) const;
  absl::Status InitialSymbols(std::string_view word, std::vector<int32_t>* ids, std::vector<uint32_t>* lens) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  // (left id << 32 | right id) -> (rank, merged id).
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];  // <0xNN> ids, -1 where absent

  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kMaxCacheEntries = 1 << 18;
  mutable std::mutex cache_mutex_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_;  // guarded by cache_mutex_
};

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_BPE_MODEL_H_
