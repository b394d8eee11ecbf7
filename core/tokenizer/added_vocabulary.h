// The "added_tokens" of a tokenizer.json: tokens matched in the text before the
// model sees it (tokenizers' AddedVocabulary). Matching is leftmost-longest over
// all token contents; lstrip/rstrip swallow neighbouring whitespace; single_word
// requires word boundaries. Tokens with "normalized": false are matched on the raw
// text, those with "normalized": true on the normalized text.
#ifndef QLORAD_CORE_TOKENIZER_ADDED_VOCABULARY_H_
#define QLORAD_CORE_TOKENIZER_ADDED_VOCABULARY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace qlorad::tokenizer {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// One piece of a split: a matched token (`id` set) or plain text.
struct AddedSplit {
  std::string_view text;
  std::optional<int32_t> id;
  size_t offset = 0;  // byte offset of `text` in the split input
};

// Leftmost-longest matcher over a fixed set of token strings.
class TokenMatcher {
 public:
  // `tokens` are (match string, index into the caller's token list).
  void Build(std::vector<std::pair<std::string, size_t>> tokens);
  bool empty() const { return tokens_.empty(); }
  // Splits `text`; `info` returns the AddedToken for a matched index.
  template <typename InfoFn>
  std::vector<AddedSplit> Split(std::string_view text, InfoFn info) const;

 private:
  // Longest token starting at text[pos]: (length, index) or length 0.
  std::pair<size_t, size_t> LongestAt(std::string_view text, size_t pos) const;
  std::vector<std::pair<std::string, size_t>> tokens_;  // sorted by first byte, then length descending
  std::vector<uint32_t> first_byte_begin_;              // 257 offsets into tokens_
};

class AddedVocabulary {
 public:
  void Add(AddedToken token);
  // Builds the matchers; `normalize` maps a normalized token's content to its normalized form.
  template <typename NormalizeFn>
  void Finalize(NormalizeFn normalize);

  std::vector<AddedSplit> SplitRaw(std::string_view text) const;
  std::vector<AddedSplit> SplitNormalized(std::string_view text) const;
  bool has_normalized_tokens() const { return !normalized_matcher_.empty(); }

  const AddedToken* FindById(int32_t id) const;
  std::optional<int32_t> FindByContent(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, size_t> by_id_;
  absl::flat_hash_map<std::string, size_t> by_content_;
  TokenMatcher raw_matcher_;
  TokenMatcher normalized_matcher_;
};

template <typename NormalizeFn>
void AddedVocabulary::Finalize(NormalizeFn normalize) {
  std::vector<std::pair<std::string, size_t>> raw, normalized;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].content.empty()) continue;
    if (tokens_[i].normalized) {
      normalized.emplace_back(normalize(tokens_[i].content), i);
    } else {
      raw.emplace_back(tokens_[i].content, i);
    }
  }
  raw_matcher_.Build(std::move(raw));
  normalized_matcher_.Build(std::move(normalized));
}

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_ADDED_VOCABULARY_H_
