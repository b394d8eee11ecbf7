// The byte strings of a tokenizer's tokens, arranged as a trie, for computing
// which tokens a byte automaton allows (token_grammar.h).
//
// Contract:
//  * bytes(id) is exactly what token `id` adds to the decoded text in the middle
//    of a sequence (leading-space rules applied as after another token), found
//    through Tokenizer::Decode, so it holds for every tokenizer qlorad loads.
//  * Tokens that are never allowed under a constraint have empty bytes: special
//    tokens, ids past either vocabulary, and tokens that decode to an
//    incomplete UTF-8 sequence (byte-fallback and byte-level fragments: constrained
//    text is built from whole characters). EOS is handled by the grammar.
//  * Immutable after Build(); share one per tokenizer.
#ifndef QLORAD_CORE_CONSTRAIN_TOKEN_VOCABULARY_H_
#define QLORAD_CORE_CONSTRAIN_TOKEN_VOCABULARY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"

namespace qlorad::constrain {

// The text token `id` adds in the middle of a decoded sequence (decoded after a
// context token, so first-token rules such as SentencePiece's leading-space strip do
// not apply); an incomplete UTF-8 piece shows as U+FFFD.
std::string TokenText(const tokenizer::Tokenizer& tokenizer, int32_t id);

class TokenVocabulary {
 public:
  // One node per distinct token prefix, in pre-order: node i's children follow it,
  // and its subtree ends before node subtree_end.
  struct TrieNode {
    uint8_t byte;
    int32_t depth;  // 1 for a first byte
    int32_t subtree_end;
    int32_t tokens_begin, tokens_end;  // tokens whose bytes end here, in trie_tokens()
  };

  // `logits_size` is the model's vocabulary (the mask length); tokenizer ids past it
  // (and ids the tokenizer does not have) are never allowed.
  static std::shared_ptr<const TokenVocabulary> Build(const tokenizer::Tokenizer& tokenizer, int32_t logits_size);

  int32_t size() const { return size_; }
  std::optional<int32_t> eos() const { return eos_; }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  const std::vector<TrieNode>& trie() const { return trie_; }
  const std::vector<int32_t>& trie_tokens() const { return trie_tokens_; }
  int32_t max_depth() const { return max_depth_; }
  int32_t usable_tokens() const { return static_cast<int32_t>(trie_tokens_.size()); }

 private:
  void BuildTrie();

  int32_t size_ = 0;
  std::optional<int32_t> eos_;
  std::vector<std::string> bytes_;
  std::vector<TrieNode> trie_;
  std::vector<int32_t> trie_tokens_;
  int32_t max_depth_ = 0;
};

}  // namespace qlorad::constrain

#endif  // QLORAD_CORE_CONSTRAIN_TOKEN_VOCABULARY_H_
