// Token-level constraints for decoding (structured outputs): a constraint (JSON
// schema, any JSON object, a choice among strings, a regex) compiled to a byte
// automaton, and per automaton state the mask of tokens that keep the text a
// prefix of some accepted text.
//
// Contract:
//  * Compile() is INVALID_ARGUMENT naming the request field (and the schema
//    keyword) for anything unsupported; the result is immutable and shared by
//    every sequence decoding under the same constraint (GrammarCache).
//  * A sequence's state is an int32 (start() first). Mask(state) lists the allowed
//    tokens: every token whose bytes the automaton accepts from `state`, plus EOS
//    exactly when the text so far is complete. Masks are computed on first use
//    of a state (one walk of the vocabulary trie) and cached; thread-safe.
//  * Following only allowed tokens, the text always matches the constraint once
//    EOS is chosen or terminal(state) holds (nothing can follow: the sequence
//    ends without spending a token).
#ifndef QLORAD_CORE_CONSTRAIN_TOKEN_GRAMMAR_H_
#define QLORAD_CORE_CONSTRAIN_TOKEN_GRAMMAR_H_

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/constrain/byte_automaton.h"
#include "core/constrain/constraint_spec.h"
#include "core/constrain/token_vocabulary.h"

namespace qlorad::constrain {

// The allowed tokens of one automaton state.
struct TokenMask {
  std::vector<uint64_t> bits;   // one bit per token id
  int32_t count = 0;            // allowed tokens
  std::vector<int32_t> tokens;  // the allowed ids, ascending; left empty when dense (> 4096)
  bool allows(int32_t id) const { return bits[id >> 6] >> (id & 63) & 1; }
  std::vector<int32_t> List() const;  // the allowed ids, ascending (also when dense)
};

class TokenGrammar {
 public:
  static absl::StatusOr<std::shared_ptr<const TokenGrammar>> Compile(const ConstraintSpec& spec,
                                                                     std::shared_ptr<const TokenVocabulary> vocabulary);

  int32_t start() const { return dfa_.start(); }
  std::shared_ptr<const TokenMask> Mask(int32_t state) const ABSL_LOCKS_EXCLUDED(mu_);
  // Sets every logit the state does not allow to -infinity (`logits` has vocabulary().size() entries).
  void ApplyMask(int32_t state, float* logits) const;
  // The state after `token`; ByteDfa::kDead when the token is not allowed. EOS
  // keeps the state (the sequence ends).
  int32_t Advance(int32_t state, int32_t token) const;
  bool terminal(int32_t state) const { return dfa_.terminal(state); }
  bool accepting(int32_t state) const { return dfa_.accepting(state); }
  int32_t states() const { return dfa_.size(); }
  const TokenVocabulary& vocabulary() const { return *vocabulary_; }

 private:
  TokenGrammar(ByteDfa dfa, std::shared_ptr<const TokenVocabulary> vocabulary);
  std::shared_ptr<const TokenMask> ComputeMask(int32_t state) const ABSL_LOCKS_EXCLUDED(mu_);  // the trie walk

  ByteDfa dfa_;
  std::shared_ptr<const TokenVocabulary> vocabulary_;
  mutable absl::Mutex mu_;  // a leaf lock
  mutable std::vector<std::shared_ptr<const TokenMask>> masks_ ABSL_GUARDED_BY(mu_);  // by state, filled on first use
};

// Compiled grammars by constraint, least recently used dropped past `capacity`.
class GrammarCache {
 public:
  explicit GrammarCache(size_t capacity = 64) : capacity_(capacity) {}
  // Compiles outside the lock (a slow schema does not hold up other requests).
  absl::StatusOr<std::shared_ptr<const TokenGrammar>> Get(const ConstraintSpec& spec,
                                                          const std::shared_ptr<const TokenVocabulary>& vocabulary)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t capacity_;
  absl::Mutex mu_;  // a leaf lock
  std::list<std::string> order_ ABSL_GUARDED_BY(mu_);  // most recent first
  std::map<std::string, std::pair<std::shared_ptr<const TokenGrammar>, std::list<std::string>::iterator>> entries_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace qlorad::constrain

#endif  // QLORAD_CORE_CONSTRAIN_TOKEN_GRAMMAR_H_
