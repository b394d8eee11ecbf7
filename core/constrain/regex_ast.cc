#include "core/constrain/regex_ast.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::constrain {
namespace {

constexpr uint32_t kMaxScalar = 0x10FFFF;
constexpr int kMaxRepeat = 1000;
constexpr int kMaxGroupDepth = 64;  // the parser recurses per group

CharSet Digits() { return CharSet::Of('0', '9'); }
CharSet Word() { return CharSet{{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}}; }
// ECMA-262 WhiteSpace and LineTerminator (what \s means in JSON Schema patterns).
CharSet Space() {
  return CharSet{{{'\t', '\r'}, {' ', ' '}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029},
                  {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}}};
}
// ECMA-262 '.': anything but a line terminator.
CharSet AnyButLineTerminator() { return CharSet{{{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}}.Complement(); }

// The code point at text[pos] (a lone invalid byte counts as itself); advances *pos.
uint32_t NextCodePoint(std::string_view text, size_t* pos) {
  size_t len = tokenizer::ValidUtf8SequenceLength(text, *pos);
  if (len == 0) len = 1;
  const uint32_t cp = len == 1 ? static_cast<unsigned char>(text[*pos]) : tokenizer::DecodeUtf8(text, *pos, len);
  *pos += len;
  return cp;
}

class Parser {
 public:
  Parser(std::string_view pattern, const std::string& field) : p_(pattern), field_(field) {}

  absl::StatusOr<RegexNode> Parse() {
    if (Peek('^')) ++pos_;
    auto node = ParseAlternation();
    if (!node.ok()) return node;
    if (pos_ < p_.size()) return Error(p_[pos_] == ')' ? "unbalanced ')'" : "unexpected character");
    return node;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(field_, ": ", std::string(what), " at offset ", pos_, " of the pattern"));
  }
  bool Peek(char c) const { return pos_ < p_.size() && p_[pos_] == c; }
  bool AtTrailingDollar() const { return pos_ + 1 == p_.size() && p_[pos_] == '$'; }

  absl::StatusOr<RegexNode> ParseAlternation() {
    std::vector<RegexNode> options;
    for (;;) {
      auto branch = ParseConcat();
      if (!branch.ok()) return branch;
      options.push_back(std::move(*branch));
      if (!Peek('|')) break;
      ++pos_;
    }
    return options.size() == 1 ? std::move(options[0]) : RegexNode::Alternation(std::move(options));
  }

  absl::StatusOr<RegexNode> ParseConcat() {
    std::vector<RegexNode> parts;
    while (pos_ < p_.size() && !Peek('|') && !Peek(')')) {
      if (AtTrailingDollar()) {
        ++pos_;
        break;
      }
      auto atom = ParseAtom();
      if (!atom.ok()) return atom;
      auto quantified = ParseQuantifiers(std::move(*atom));
      if (!quantified.ok()) return quantified;
      parts.push_back(std::move(*quantified));
    }
    return RegexNode::Concat(std::move(parts));
  }

  absl::StatusOr<RegexNode> ParseQuantifiers(RegexNode atom) {
    for (;;) {
      int min = 0, max = -1;
      if (Peek('*')) {
        ++pos_;
      } else if (Peek('+')) {
        ++pos_, min = 1;
      } else if (Peek('?')) {
        ++pos_, max = 1;
      } else if (Peek('{') && pos_ + 1 < p_.size() && std::isdigit(static_cast<unsigned char>(p_[pos_ + 1]))) {
        if (auto s = ParseBraces(&min, &max); !s.ok()) return s;
      } else {
        return atom;
      }
      if (Peek('?')) ++pos_;  // lazy: same language
      atom = RegexNode::Repeat(std::move(atom), min, max);
    }
  }

  absl::Status ParseBraces(int* min, int* max) {
    ++pos_;  // '{'
    auto number = [&](int* out) {
      size_t start = pos_;
      long value = 0;
      while (pos_ < p_.size() && std::isdigit(static_cast<unsigned char>(p_[pos_])) && value <= kMaxRepeat)
        value = value * 10 + (p_[pos_++] - '0');
      *out = static_cast<int>(value);
      return pos_ > start;
    };
    if (!number(min)) return Error("expected a count in {n,m}");
    *max = *min;
    if (Peek(',')) {
      ++pos_;
      *max = -1;
      if (!Peek('}') && !number(max)) return Error("expected a count in {n,m}");
    }
    if (!Peek('}')) return Error("unterminated {n,m}");
    ++pos_;
    if (*min > kMaxRepeat || *max > kMaxRepeat)
      return Error(absl::StrCat("repetition count above ", kMaxRepeat));
    if (*max >= 0 && *max < *min) return Error("{n,m} with m < n");
    return absl::OkStatus();
  }

  absl::StatusOr<RegexNode> ParseAtom() {
    const char c = p_[pos_];
    switch (c) {
      case '(': return ParseGroup();
      case '[': return ParseBracket();
      case '.':
        ++pos_;
        return RegexNode::Chars(AnyButLineTerminator());
      case '\\': {
        auto set = ParseEscape();
        if (!set.ok()) return set.status();
        return RegexNode::Chars(std::move(*set));
      }
      case '*': case '+': case '?': case '{': return Error(absl::StrCat("nothing to repeat before '", std::string(1, c), "'"));
      case '^': case '$': return Error("anchors are only supported at the start and end of the pattern");
      default: return RegexNode::Chars(ParseLiteralChar());
    }
  }

  CharSet ParseLiteralChar() {
    const uint32_t cp = NextCodePoint(p_, &pos_);
    return CharSet::Of(cp, cp);
  }

  absl::StatusOr<RegexNode> ParseGroup() {
    if (depth_ >= kMaxGroupDepth) return Error(absl::StrCat("groups nested deeper than ", kMaxGroupDepth));
    ++pos_;  // '('
    if (Peek('?')) {
      if (pos_ + 1 < p_.size() && p_[pos_ + 1] == ':') {
        pos_ += 2;
      } else {
        return Error("lookaround, named groups and inline flags '(?' are not supported");
      }
    }
    ++depth_;
    auto inner = ParseAlternation();
    --depth_;
    if (!inner.ok()) return inner;
    if (!Peek(')')) return Error("missing ')'");
    ++pos_;
    return inner;
  }

  absl::StatusOr<uint32_t> ParseHex(int digits) {
    if (pos_ + digits > p_.size()) return Error("truncated hex escape");
    uint32_t value = 0;
    for (int i = 0; i < digits; ++i) {
      const char h = p_[pos_++];
      const int d = std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                    : (h >= 'a' && h <= 'f')                    ? h - 'a' + 10
                    : (h >= 'A' && h <= 'F')                    ? h - 'A' + 10
                                                                : -1;
      if (d < 0) return Error("bad hex digit in escape");
      value = value * 16 + static_cast<uint32_t>(d);
    }
    return value;
  }

  // After a backslash: a class escape or one character.
  absl::StatusOr<CharSet> ParseEscape() {
    ++pos_;  // '\'
    if (pos_ >= p_.size()) return Error("trailing backslash");
    const char e = p_[pos_++];
    switch (e) {
      case 'd': return Digits();
      case 'D': return Digits().Complement();
      case 'w': return Word();
      case 'W': return Word().Complement();
      case 's': return Space();
      case 'S': return Space().Complement();
      case 'n': return CharSet::Of('\n', '\n');
      case 't': return CharSet::Of('\t', '\t');
      case 'r': return CharSet::Of('\r', '\r');
      case 'f': return CharSet::Of('\f', '\f');
      case 'v': return CharSet::Of('\v', '\v');
      case 'x': case 'u': {
        auto cp = ParseHex(e == 'x' ? 2 : 4);
        if (!cp.ok()) return cp.status();
        return CharSet::Of(*cp, *cp);
      }
      default:
        if (std::isalnum(static_cast<unsigned char>(e)))
          return Error(absl::StrCat("escape '\\", std::string(1, e), "' is not supported (backreferences, \\b, \\p...)"));
        --pos_;
        return ParseLiteralChar();
    }
  }

  // One member of a bracket class: an escape or a character.
  absl::StatusOr<CharSet> ParseClassMember() {
    if (Peek('\\')) return ParseEscape();
    return ParseLiteralChar();
  }
  static bool IsSingle(const CharSet& set) { return set.ranges.size() == 1 && set.ranges[0].first == set.ranges[0].second; }

  absl::StatusOr<RegexNode> ParseBracket() {
    ++pos_;  // '['
    const bool negated = Peek('^');
    if (negated) ++pos_;
    CharSet set;
    bool first = true;
    while (pos_ < p_.size() && (first || !Peek(']'))) {
      first = false;
      auto item = ParseClassMember();
      if (!item.ok()) return item.status();
      if (IsSingle(*item) && Peek('-') && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
        ++pos_;
        auto upper = ParseClassMember();
        if (!upper.ok()) return upper.status();
        if (!IsSingle(*upper)) return Error("a class escape cannot end a range");
        if (upper->ranges[0].first < item->ranges[0].first) return Error("range out of order in [...]");
        *item = CharSet::Of(item->ranges[0].first, upper->ranges[0].first);
      }
      set.AddSet(*item);
    }
    if (!Peek(']')) return Error("missing ']'");
    ++pos_;
    set.Normalize();
    return RegexNode::Chars(negated ? set.Complement() : set);
  }

  std::string_view p_;
  const std::string& field_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

CharSet CharSet::Any() {
  CharSet all = CharSet::Of(0, kMaxScalar);
  all.Normalize();
  return all;
}

void CharSet::AddSet(const CharSet& other) { ranges.insert(ranges.end(), other.ranges.begin(), other.ranges.end()); }

void CharSet::Normalize() {
  std::vector<std::pair<uint32_t, uint32_t>> cut;
  for (auto [lo, hi] : ranges) {  // drop the surrogates
    if (hi < 0xD800 || lo > 0xDFFF) {
      cut.emplace_back(lo, hi);
      continue;
    }
    if (lo < 0xD800) cut.emplace_back(lo, 0xD7FF);
    if (hi > 0xDFFF) cut.emplace_back(0xE000, hi);
  }
  std::sort(cut.begin(), cut.end());
  ranges.clear();
  for (auto [lo, hi] : cut) {
    if (!ranges.empty() && lo <= ranges.back().second + 1) {
      ranges.back().second = std::max(ranges.back().second, hi);
    } else {
      ranges.emplace_back(lo, hi);
    }
  }
}

CharSet CharSet::Complement() const {
  CharSet sorted = *this;
  sorted.Normalize();
  CharSet out;
  uint32_t next = 0;
  for (auto [lo, hi] : sorted.ranges) {
    if (lo > next) out.Add(next, lo - 1);
    next = hi + 1;
  }
  if (next <= kMaxScalar) out.Add(next, kMaxScalar);
  out.Normalize();
  return out;
}

CharSet CharSet::Minus(const CharSet& other) const {
  CharSet keep = other.Complement();
  CharSet self = *this;
  self.Normalize();
  CharSet out;
  for (auto [a, b] : self.ranges)
    for (auto [c, d] : keep.ranges) {
      const uint32_t lo = std::max(a, c), hi = std::min(b, d);
      if (lo <= hi) out.Add(lo, hi);
    }
  out.Normalize();
  return out;
}

RegexNode RegexNode::Chars(CharSet set) {
  RegexNode n;
  n.kind = Kind::kChars;
  set.Normalize();
  n.chars = std::move(set);
  return n;
}

RegexNode RegexNode::Literal(std::string_view utf8) {
  std::vector<RegexNode> parts;
  for (size_t pos = 0; pos < utf8.size();) {
    const uint32_t cp = NextCodePoint(utf8, &pos);
    parts.push_back(Chars(CharSet::Of(cp, cp)));
  }
  return Concat(std::move(parts));
}

RegexNode RegexNode::Concat(std::vector<RegexNode> parts) {
  if (parts.size() == 1) return std::move(parts[0]);
  RegexNode n;
  n.kind = parts.empty() ? Kind::kEmpty : Kind::kConcat;
  n.children = std::move(parts);
  return n;
}

RegexNode RegexNode::Alternation(std::vector<RegexNode> options) {
  if (options.size() == 1) return std::move(options[0]);
  RegexNode n;
  n.kind = Kind::kAlternation;
  n.children = std::move(options);
  return n;
}

RegexNode RegexNode::Repeat(RegexNode child, int min, int max) {
  RegexNode n;
  n.kind = Kind::kRepeat;
  n.min = min;
  n.max = max;
  n.children.push_back(std::move(child));
  return n;
}

absl::StatusOr<RegexNode> ParseRegex(std::string_view pattern, const std::string& field) {
  return Parser(pattern, field).Parse();
}

RegexNode ExcludeChars(const RegexNode& node, const CharSet& excluded) {
  RegexNode out = node;
  if (out.kind == RegexNode::Kind::kChars) out.chars = out.chars.Minus(excluded);
  for (auto& child : out.children) child = ExcludeChars(child, excluded);
  return out;
}

}  // namespace qlorad::constrain
