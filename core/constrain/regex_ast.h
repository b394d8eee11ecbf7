// Regular languages over Unicode text as a small AST, and a parser for the regex
// syntax that guided_regex and JSON-schema `pattern` accept.
//
// Contract:
//  * A pattern always matches the WHOLE text (as vLLM's guided_regex and
//    Outlines do); a leading '^' and a trailing '$' are accepted and change nothing.
//  * Supported: literals; escapes \\ \. \n \t \r \f \v \xHH \uHHHH and escaped
//    metacharacters; classes \d \D \w \W \s \S and '.' with ECMA-262's meaning (as
//    JSON Schema patterns have it: \s includes Unicode spaces, '.' is anything but a
//    line terminator);
//    bracket classes [a-z_] and negated [^...] (with those escapes inside);
//    groups (...) and (?:...); alternation |; quantifiers * + ? {n} {n,} {n,m}
//    (a lazy '?' suffix is accepted: it selects the same strings).
//  * Anything else (backreferences, lookaround, named groups, inline flags,
//    anchors inside the pattern, \b) is INVALID_ARGUMENT naming the construct and
//    its byte offset; so are groups nested deeper than 64.
//  * Character sets are sets of Unicode scalar values (surrogates excluded); the
//    automaton (byte_automaton.h) turns them into UTF-8 byte sequences.
#ifndef QLORAD_CORE_CONSTRAIN_REGEX_AST_H_
#define QLORAD_CORE_CONSTRAIN_REGEX_AST_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace qlorad::constrain {

// Inclusive code point ranges, sorted and non-overlapping after Normalize().
struct CharSet {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;

  static CharSet Of(uint32_t lo, uint32_t hi) { return CharSet{{{lo, hi}}}; }
  static CharSet Any();  // every scalar value
  void Add(uint32_t lo, uint32_t hi) { ranges.emplace_back(lo, hi); }
  void AddSet(const CharSet& other);
  void Normalize();  // sort, merge, drop surrogates
  CharSet Complement() const;
  CharSet Minus(const CharSet& other) const;
  bool empty() const { return ranges.empty(); }
};

struct RegexNode {
  enum class Kind { kEmpty, kChars, kConcat, kAlternation, kRepeat };
  Kind kind = Kind::kEmpty;
  CharSet chars;                    // kChars
  std::vector<RegexNode> children;  // kConcat, kAlternation, kRepeat (one child)
  int min = 0, max = -1;            // kRepeat; max < 0 = unbounded

  static RegexNode Empty() { return RegexNode{}; }
  static RegexNode Chars(CharSet set);
  static RegexNode Literal(std::string_view utf8);  // the exact text
  static RegexNode Concat(std::vector<RegexNode> parts);
  static RegexNode Alternation(std::vector<RegexNode> options);
  static RegexNode Repeat(RegexNode child, int min, int max);
  static RegexNode Optional(RegexNode child) { return Repeat(std::move(child), 0, 1); }
};

// Parses `pattern` (see the header comment). `field` names it in errors
// (e.g. "guided_regex").
absl::StatusOr<RegexNode> ParseRegex(std::string_view pattern, const std::string& field);

// A copy of `node` whose character sets exclude `excluded` (used to keep
// JSON-schema patterns free of characters that would need escaping in JSON).
RegexNode ExcludeChars(const RegexNode& node, const CharSet& excluded);

}  // namespace qlorad::constrain

#endif  // QLORAD_CORE_CONSTRAIN_REGEX_AST_H_
