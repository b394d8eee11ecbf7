// A deterministic automaton over bytes for a regex AST (regex_ast.h): the set of
// UTF-8 byte strings whose text the AST matches in full.
//
// Contract:
//  * Built once (Thompson NFA, then subset construction over byte equivalence
//    classes), immutable afterwards and safe to share between threads.
//  * States from which no accepting state can be reached are removed: Next()
//    returns kDead for any byte that cannot start a completion, so every live
//    state can still be completed.
//  * Size is bounded: more than max_states NFA or DFA states is
//    INVALID_ARGUMENT ("too complex", with a hint to bound lengths/items).
#ifndef QLORAD_CORE_CONSTRAIN_BYTE_AUTOMATON_H_
#define QLORAD_CORE_CONSTRAIN_BYTE_AUTOMATON_H_

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/constrain/regex_ast.h"

namespace qlorad::constrain {

class ByteDfa {
 public:
  static constexpr int32_t kDead = -1;

  // `field` names the constraint in errors.
  static absl::StatusOr<ByteDfa> Build(const RegexNode& regex, const std::string& field, int64_t max_states = 200000);

  int32_t start() const { return 0; }
  int32_t Next(int32_t state, uint8_t byte) const { return next_[static_cast<size_t>(state) * classes_ + class_of_[byte]]; }
  // Follows `bytes` from `state`; kDead when any byte is refused.
  int32_t Walk(int32_t state, std::string_view bytes) const;
  bool accepting(int32_t state) const { return accepting_[state] != 0; }
  // No byte leads anywhere: the text is complete (accepting) and must end.
  bool terminal(int32_t state) const { return terminal_[state] != 0; }
  int32_t size() const { return static_cast<int32_t>(accepting_.size()); }

 private:
  int classes_ = 0;
  std::array<uint8_t, 256> class_of_{};
  std::vector<int32_t> next_;  // [state * classes_ + class]
  std::vector<uint8_t> accepting_, terminal_;
};

}  // namespace qlorad::constrain

#endif  // QLORAD_CORE_CONSTRAIN_BYTE_AUTOMATON_H_
