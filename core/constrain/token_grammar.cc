#include "core/constrain/token_grammar.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/constrain/json_schema.h"
#include "core/util/status_macros.h"

namespace qlorad::constrain {
namespace {

// Past this many allowed tokens a mask is applied word by word instead of by list.
constexpr size_t kSparseMaskTokens = 4096;

absl::StatusOr<RegexNode> ConstraintRegex(const ConstraintSpec& spec) {
  switch (spec.kind) {
    case ConstraintSpec::Kind::kJsonSchema: return JsonSchemaToRegex(spec.text, spec.field);
    case ConstraintSpec::Kind::kJsonObject: return AnyJsonObject();
    case ConstraintSpec::Kind::kRegex: return ParseRegex(spec.text, spec.field);
    case ConstraintSpec::Kind::kChoice: {
      if (spec.choices.empty()) return absl::InvalidArgumentError(absl::StrCat(spec.field, ": must list at least one choice"));
      std::vector<RegexNode> options;
      for (const auto& choice : spec.choices) {
        if (choice.empty()) return absl::InvalidArgumentError(absl::StrCat(spec.field, ": a choice must not be empty"));
        options.push_back(RegexNode::Literal(choice));
      }
      return RegexNode::Alternation(std::move(options));
    }
    case ConstraintSpec::Kind::kNone: break;
  }
  return absl::InvalidArgumentError("no constraint to compile");
}

}  // namespace

std::vector<int32_t> TokenMask::List() const {
  if (!tokens.empty() || count == 0) return tokens;
  std::vector<int32_t> out;
  out.reserve(count);
  for (size_t w = 0; w < bits.size(); ++w)
    for (uint64_t word = bits[w]; word != 0; word &= word - 1) out.push_back(static_cast<int32_t>(w * 64 + __builtin_ctzll(word)));
  return out;
}

TokenGrammar::TokenGrammar(ByteDfa dfa, std::shared_ptr<const TokenVocabulary> vocabulary)
    : dfa_(std::move(dfa)), vocabulary_(std::move(vocabulary)), masks_(dfa_.size()) {}

absl::StatusOr<std::shared_ptr<const TokenGrammar>> TokenGrammar::Compile(
    const ConstraintSpec& spec, std::shared_ptr<const TokenVocabulary> vocabulary) {
  QLORAD_ASSIGN_OR_RETURN(RegexNode regex, ConstraintRegex(spec));
  QLORAD_ASSIGN_OR_RETURN(ByteDfa dfa, ByteDfa::Build(regex, spec.field));
  std::shared_ptr<const TokenGrammar> grammar(new TokenGrammar(std::move(dfa), std::move(vocabulary)));
  if (grammar->Mask(grammar->start())->count == 0)
    return absl::InvalidArgumentError(absl::StrCat(spec.field, ": no token of this model's vocabulary can start the constrained text"));
  return grammar;
}

std::shared_ptr<const TokenMask> TokenGrammar::Mask(int32_t state) const {
  {
    absl::MutexLock lock(&mu_);
    if (masks_[state]) return masks_[state];
  }
  std::shared_ptr<const TokenMask> mask = ComputeMask(state);
  absl::MutexLock lock(&mu_);
  if (!masks_[state]) masks_[state] = std::move(mask);
  return masks_[state];
}

std::shared_ptr<const TokenMask> TokenGrammar::ComputeMask(int32_t state) const {
  auto mask = std::make_shared<TokenMask>();
  const TokenVocabulary& v = *vocabulary_;
  mask->bits.assign((static_cast<size_t>(v.size()) + 63) / 64, 0);
  const auto& trie = v.trie();
  const auto& trie_tokens = v.trie_tokens();
  std::vector<int32_t> at_depth(v.max_depth() + 1);
  at_depth[0] = state;
  for (size_t i = 0; i < trie.size();) {
    const TokenVocabulary::TrieNode& node = trie[i];
    const int32_t next = dfa_.Next(at_depth[node.depth - 1], node.byte);
    if (next == ByteDfa::kDead) {
      i = static_cast<size_t>(node.subtree_end);
      continue;
    }
    at_depth[node.depth] = next;
    for (int32_t k = node.tokens_begin; k < node.tokens_end; ++k) mask->tokens.push_back(trie_tokens[k]);
    ++i;
  }
  if (dfa_.accepting(state) && v.eos()) mask->tokens.push_back(*v.eos());
  std::sort(mask->tokens.begin(), mask->tokens.end());
  for (int32_t t : mask->tokens) mask->bits[t >> 6] |= uint64_t{1} << (t & 63);
  mask->count = static_cast<int32_t>(mask->tokens.size());
  if (mask->tokens.size() > kSparseMaskTokens) std::vector<int32_t>().swap(mask->tokens);  // dense: the bits suffice
  return mask;
}

void TokenGrammar::ApplyMask(int32_t state, float* logits) const {
  const std::shared_ptr<const TokenMask> mask = Mask(state);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int32_t n = vocabulary_->size();
  if (!mask->tokens.empty() || mask->count == 0) {  // sparse: keep the listed logits
    std::vector<float> kept(mask->tokens.size());
    for (size_t i = 0; i < kept.size(); ++i) kept[i] = logits[mask->tokens[i]];
    std::fill(logits, logits + n, kNegInf);
    for (size_t i = 0; i < kept.size(); ++i) logits[mask->tokens[i]] = kept[i];
    return;
  }
  for (size_t w = 0; w < mask->bits.size(); ++w) {
    const uint64_t word = mask->bits[w];
    if (word == ~uint64_t{0}) continue;
    const int32_t base = static_cast<int32_t>(w * 64);
    for (int32_t b = 0; b < 64 && base + b < n; ++b)
      if (!(word >> b & 1)) logits[base + b] = kNegInf;
  }
}

int32_t TokenGrammar::Advance(int32_t state, int32_t token) const {
  if (token < 0 || token >= vocabulary_->size()) return ByteDfa::kDead;
  const std::shared_ptr<const TokenMask> mask = Mask(state);
  if (!mask->allows(token)) return ByteDfa::kDead;
  if (vocabulary_->eos() && token == *vocabulary_->eos()) return state;
  return dfa_.Walk(state, vocabulary_->bytes(token));
}

absl::StatusOr<std::shared_ptr<const TokenGrammar>> GrammarCache::Get(
    const ConstraintSpec& spec, const std::shared_ptr<const TokenVocabulary>& vocabulary) {
  const std::string key = spec.CacheKey();
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
  }
  QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<const TokenGrammar> grammar, TokenGrammar::Compile(spec, vocabulary));
  absl::MutexLock lock(&mu_);
  if (entries_.count(key)) return entries_[key].first;
  order_.push_front(key);
  entries_[key] = {grammar, order_.begin()};
  while (entries_.size() > capacity_) {
    entries_.erase(order_.back());
    order_.pop_back();
  }
  return grammar;
}

}  // namespace qlorad::constrain
