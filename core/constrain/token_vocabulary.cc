#include "core/constrain/token_vocabulary.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/match.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::constrain {
namespace {

// A context token to decode each token after, so that rules for the first token
// of a text (SentencePiece's leading-space strip) do not apply.
std::optional<int32_t> ContextToken(const tokenizer::Tokenizer& tokenizer) {
  auto ids = tokenizer.Encode("a", /*add_special_tokens=*/false);
  if (!ids.ok() || ids->empty()) return std::nullopt;
  return ids->back();
}

// nullopt when the pair does not decode to the context's text plus more.
std::optional<std::string> TextAfter(const tokenizer::Tokenizer& tokenizer, std::optional<int32_t> context,
                                     const std::string& prefix, int32_t id) {
  if (!context) return tokenizer.Decode({id});
  const int32_t pair[2] = {*context, id};
  std::string text = tokenizer.Decode(pair);
  if (!absl::StartsWith(text, prefix)) return std::nullopt;
  return text.substr(prefix.size());
}

}  // namespace

std::string TokenText(const tokenizer::Tokenizer& tokenizer, int32_t id) {
  const std::optional<int32_t> context = ContextToken(tokenizer);
  auto text = TextAfter(tokenizer, context, context ? tokenizer.Decode({*context}) : std::string(), id);
  return text ? *text : tokenizer.Decode({id});
}

std::shared_ptr<const TokenVocabulary> TokenVocabulary::Build(const tokenizer::Tokenizer& tokenizer,
                                                              int32_t logits_size) {
  auto vocab = std::make_shared<TokenVocabulary>();
  vocab->size_ = logits_size;
  if (tokenizer.eos_id() && *tokenizer.eos_id() < logits_size) vocab->eos_ = tokenizer.eos_id();
  vocab->bytes_.assign(vocab->size_, std::string());
  const std::optional<int32_t> context = ContextToken(tokenizer);
  const std::string prefix = context ? tokenizer.Decode({*context}) : std::string();
  for (int32_t id = 0; id < std::min(tokenizer.vocab_size(), logits_size); ++id) {
    if (tokenizer.IsSpecial(id) || id == vocab->eos_) continue;
    std::optional<std::string> after = TextAfter(tokenizer, context, prefix, id);
    if (!after) continue;
    std::string text = std::move(*after);
    if (text.find(tokenizer::kReplacementChar) != std::string::npos) continue;  // an incomplete UTF-8 piece
    vocab->bytes_[id] = std::move(text);
  }
  vocab->BuildTrie();
  return vocab;
}

void TokenVocabulary::BuildTrie() {
  std::vector<int32_t> order;
  for (int32_t id = 0; id < size_; ++id)
    if (!bytes_[id].empty()) order.push_back(id);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bytes_[a] < bytes_[b] || (bytes_[a] == bytes_[b] && a < b); });
  trie_tokens_ = order;
  std::vector<int32_t> path;  // node index at each depth - 1
  const std::string* previous = nullptr;
  auto close_to = [&](size_t depth) {
    while (path.size() > depth) {
      trie_[path.back()].subtree_end = static_cast<int32_t>(trie_.size());
      path.pop_back();
    }
  };
  for (size_t k = 0; k < order.size(); ++k) {
    const std::string& s = bytes_[order[k]];
    size_t common = 0;
    if (previous != nullptr)
      while (common < s.size() && common < previous->size() && s[common] == (*previous)[common]) ++common;
    close_to(common);
    for (size_t d = common; d < s.size(); ++d) {
      path.push_back(static_cast<int32_t>(trie_.size()));
      const int32_t slot = static_cast<int32_t>(k);
      trie_.push_back({static_cast<uint8_t>(s[d]), static_cast<int32_t>(d + 1), 0, slot, slot});
    }
    trie_[path.back()].tokens_end = static_cast<int32_t>(k + 1);
    if (trie_[path.back()].tokens_begin > static_cast<int32_t>(k)) trie_[path.back()].tokens_begin = static_cast<int32_t>(k);
    max_depth_ = std::max(max_depth_, static_cast<int32_t>(s.size()));
    previous = &s;
  }
  close_to(0);
}

}  // namespace qlorad::constrain
