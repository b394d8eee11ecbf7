#include "core/tokenizer/bpe_model.h"

#include <cstdio>
#include <queue>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {
namespace {

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  uint32_t len;  // bytes of the original word covered; 0 = merged away
};

struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // std::priority_queue is a max-heap: "less" means lower priority, i.e. larger (rank, pos).
  bool operator<(const Candidate& other) const {
    if (rank != other.rank) return rank > other.rank;
    return pos > other.pos;
  }
};

absl::StatusOr<std::string> OptionalString(const nlohmann::json& obj, const char* key) {
  if (!obj.contains(key) || obj[key].is_null()) return std::string();
  if (!obj[key].is_string()) return absl::InvalidArgumentError(absl::StrCat("model.", key, " must be a string or null"));
  return obj[key].get<std::string>();
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& model) {
  auto bpe = std::unique_ptr<BpeModel>(new BpeModel());
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0) {
    return absl::UnimplementedError("model.dropout: BPE dropout is not supported (encoding must be deterministic)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return absl::InvalidArgumentError("model.vocab: missing or not an object");
  }
  int32_t max_id = -1;
  bpe->vocab_.reserve(model["vocab"].size());
  for (const auto& [token, id_json] : model["vocab"].items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 || id_json.get<int64_t>() > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat("model.vocab['", token, "']: id must be a non-negative integer"));
    }
    if (id_json.get<int64_t>() >= kMaxTokenId) {  // ids index a dense table: bound it before allocating
      return absl::InvalidArgumentError(absl::StrCat("model.vocab['", token, "']: id ", id_json.get<int64_t>(),
                                                     " is too large (ids must be below ", kMaxTokenId,
                                                     "; real vocabularies have at most a few hundred thousand)"));
    }
    const auto id = static_cast<int32_t>(id_json.get<int64_t>());
    bpe->vocab_[token] = id;
    max_id = std::max(max_id, id);
  }
  bpe->id_to_token_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : bpe->vocab_) bpe->id_to_token_[static_cast<size_t>(id)] = token;

  auto unk = OptionalString(model, "unk_token");
  if (!unk.ok()) return unk.status();
  if (!unk->empty()) {
    auto it = bpe->vocab_.find(*unk);
    // HF tolerates an unk_token missing from the vocab until it is needed; so do we (never used then).
    if (it != bpe->vocab_.end()) bpe->unk_id_ = it->second;
  }
  auto prefix = OptionalString(model, "continuing_subword_prefix");
  if (!prefix.ok()) return prefix.status();
  bpe->continuing_subword_prefix_ = *prefix;
  auto suffix = OptionalString(model, "end_of_word_suffix");
  if (!suffix.ok()) return suffix.status();
  bpe->end_of_word_suffix_ = *suffix;
  bpe->fuse_unk_ = model.value("fuse_unk", false);
  bpe->byte_fallback_ = model.value("byte_fallback", false);
  bpe->ignore_merges_ = model.value("ignore_merges", false);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = bpe->vocab_.find(name);
    bpe->byte_ids_[b] = it == bpe->vocab_.end() ? -1 : it->second;
  }

  if (!model.contains("merges") || !model["merges"].is_array()) {
    return absl::InvalidArgumentError("model.merges: missing or not an array");
  }
  const auto& merges = model["merges"];
  bpe->merges_.reserve(merges.size());
  const size_t prefix_len = bpe->continuing_subword_prefix_.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& m = merges[rank];
    std::string a, b;
    if (m.is_string()) {  // legacy "a b"
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("model.merges[", rank, "]: '", s, "' is not two tokens separated by a space"));
      }
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat("model.merges[", rank, "]: expected \"a b\" or [\"a\", \"b\"]"));
    }
    auto ia = bpe->vocab_.find(a);
    auto ib = bpe->vocab_.find(b);
    if (ia == bpe->vocab_.end() || ib == bpe->vocab_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("model.merges[", rank, "]: token '", ia == bpe->vocab_.end() ? a : b,
                                                     "' is not in model.vocab"));
    }
    // The merged token drops b's continuing-subword prefix, as tokenizers does.
    std::string merged = a + (prefix_len > 0 && b.compare(0, prefix_len, bpe->continuing_subword_prefix_) == 0
                                  ? b.substr(prefix_len) : b);
    auto im = bpe->vocab_.find(merged);
    if (im == bpe->vocab_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("model.merges[", rank, "]: merged token '", merged, "' is not in model.vocab"));
    }
    // Later duplicates overwrite earlier ones (HashMap collect semantics in tokenizers).
    bpe->merges_[PairKey(ia->second, ib->second)] = {static_cast<int32_t>(rank), im->second};
  }
  return bpe;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(AsAbsl(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  const std::string& token = id_to_token_[static_cast<size_t>(id)];
  // Holes in a sparse vocab are empty strings; a real token is never empty.
  return token.empty() ? nullptr : &token;
}

absl::Status BpeModel::InitialSymbols(std::string_view word, std::vector<int32_t>* ids,
                                      std::vector<uint32_t>* lens) const {
  std::optional<std::pair<int32_t, uint32_t>> pending_unk;
  std::string scratch;
  size_t pos = 0;
  while (pos < word.size()) {
    const auto b = static_cast<unsigned char>(word[pos]);
    size_t len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
    if (pos + len > word.size()) len = word.size() - pos;
    const bool is_first = pos == 0;
    const bool is_last = pos + len == word.size();
    std::string_view piece = word.substr(pos, len);
    if ((!is_first && !continuing_subword_prefix_.empty()) || (is_last && !end_of_word_suffix_.empty())) {
      scratch.clear();
      if (!is_first) scratch += continuing_subword_prefix_;
      scratch.append(piece);
      if (is_last) scratch += end_of_word_suffix_;
      piece = scratch;
    }
    auto it = vocab_.find(AsAbsl(piece));
    if (it != vocab_.end()) {
      if (pending_unk) {
        ids->push_back(pending_unk->first);
        lens->push_back(pending_unk->second);
        pending_unk.reset();
      }
      ids->push_back(it->second);
      lens->push_back(static_cast<uint32_t>(len));
    } else {
      bool done = false;
      if (byte_fallback_) {
        bool all = true;
        for (unsigned char c : piece) all = all && byte_ids_[c] >= 0;
        if (all) {
          for (unsigned char c : piece) {
            ids->push_back(byte_ids_[c]);
            lens->push_back(1);
          }
          done = true;  // note: like tokenizers, a pending unk is not flushed here
        }
      }
      if (!done) {
        if (!unk_id_) {
          return absl::InvalidArgumentError(absl::StrCat("BPE: character '", std::string(word.substr(pos, len)),
                                                         "' is not in the vocab and the model has no unk_token "
                                                         "or byte_fallback"));
        }
        if (pending_unk && fuse_unk_) {
          pending_unk->second += static_cast<uint32_t>(len);
        } else {
          if (pending_unk) {
            ids->push_back(pending_unk->first);
            lens->push_back(pending_unk->second);
          }
          pending_unk = std::make_pair(*unk_id_, static_cast<uint32_t>(len));
        }
      }
    }
    pos += len;
  }
  if (pending_unk) {
    ids->push_back(pending_unk->first);
    lens->push_back(pending_unk->second);
  }
  return absl::OkStatus();
}

absl::Status BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return absl::OkStatus();
  if (ignore_merges_) {
    auto it = vocab_.find(AsAbsl(word));
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return absl::OkStatus();
    }
  }
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(AsAbsl(word));
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return absl::OkStatus();
    }
  }
  std::vector<int32_t> ids;
  std::vector<uint32_t> lens;
  ids.reserve(word.size());
  lens.reserve(word.size());
  if (auto status = InitialSymbols(word, &ids, &lens); !status.ok()) return status;

  std::vector<Symbol> symbols(ids.size());
  const int32_t n = static_cast<int32_t>(ids.size());
  for (int32_t i = 0; i < n; ++i) symbols[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, lens[i]};
  std::vector<Candidate> initial;
  initial.reserve(ids.size());
  for (int32_t i = 0; i + 1 < n; ++i) {
    auto it = merges_.find(PairKey(ids[i], ids[i + 1]));
    if (it != merges_.end()) initial.push_back({it->second.first, i, it->second.second});
  }
  std::priority_queue<Candidate> queue(std::less<Candidate>(), std::move(initial));
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const int32_t next_pos = cur.next;
    const Symbol right = symbols[next_pos];
    auto it = merges_.find(PairKey(cur.id, right.id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[next_pos].len = 0;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (cur.prev >= 0) {
      auto p = merges_.find(PairKey(symbols[cur.prev].id, cur.id));
      if (p != merges_.end()) queue.push({p->second.first, cur.prev, p->second.second});
    }
    if (cur.next >= 0) {
      auto q = merges_.find(PairKey(cur.id, symbols[cur.next].id));
      if (q != merges_.end()) queue.push({q->second.first, top.pos, q->second.second});
    }
  }
  const size_t start = out->size();
  for (const Symbol& s : symbols) {
    if (s.len != 0) out->push_back(s.id);
  }
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kMaxCacheEntries) cache_.emplace(std::string(word), std::vector<int32_t>(out->begin() + start, out->end()));
  }
  return absl::OkStatus();
}

}  // namespace qlorad::tokenizer
