#include "core/constrain/byte_automaton.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::constrain {
namespace {

struct ByteRange {
  uint8_t lo, hi;
};

// The UTF-8 encodings of the code points [lo, hi] as sequences of byte ranges
// (the classic split by encoded length and by continuation-byte boundaries).
void Utf8Sequences(uint32_t lo, uint32_t hi, std::vector<std::vector<ByteRange>>* out) {
  static constexpr uint32_t kLengthEnds[] = {0x7F, 0x7FF, 0xFFFF};
  for (uint32_t end : kLengthEnds)
    if (lo <= end && hi > end) {
      Utf8Sequences(lo, end, out);
      Utf8Sequences(end + 1, hi, out);
      return;
    }
  if (hi <= 0x7F) {
    out->push_back({{static_cast<uint8_t>(lo), static_cast<uint8_t>(hi)}});
    return;
  }
  const int length = hi <= 0x7FF ? 2 : hi <= 0xFFFF ? 3 : 4;
  for (int i = 1; i < length; ++i) {
    const uint32_t mask = (1u << (6 * i)) - 1;
    if ((lo & ~mask) != (hi & ~mask)) {
      if ((lo & mask) != 0) {
        Utf8Sequences(lo, lo | mask, out);
        Utf8Sequences((lo | mask) + 1, hi, out);
        return;
      }
      if ((hi & mask) != mask) {
        Utf8Sequences(lo, (hi & ~mask) - 1, out);
        Utf8Sequences(hi & ~mask, hi, out);
        return;
      }
    }
  }
  std::string a, b;
  tokenizer::AppendUtf8(lo, &a);
  tokenizer::AppendUtf8(hi, &b);
  std::vector<ByteRange> seq;
  for (size_t i = 0; i < a.size(); ++i) seq.push_back({static_cast<uint8_t>(a[i]), static_cast<uint8_t>(b[i])});
  out->push_back(std::move(seq));
}

struct Nfa {
  struct Edge {
    uint8_t lo, hi;
    int32_t target;
  };
  struct State {
    std::vector<int32_t> eps;
    std::vector<Edge> edges;
  };
  std::vector<State> states;
  int64_t limit = 0;
  bool overflow = false;

  int32_t NewState() {
    if (static_cast<int64_t>(states.size()) >= limit) overflow = true;
    states.emplace_back();
    return static_cast<int32_t>(states.size() - 1);
  }

  // Thompson construction: a fragment from `from`; returns its end state.
  int32_t Compile(const RegexNode& node, int32_t from) {
    if (overflow) return from;
    switch (node.kind) {
      case RegexNode::Kind::kEmpty: return from;
      case RegexNode::Kind::kChars: return CompileChars(node.chars, from);
      case RegexNode::Kind::kConcat:
        for (const auto& child : node.children) from = Compile(child, from);
        return from;
      case RegexNode::Kind::kAlternation: {
        const int32_t end = NewState();
        for (const auto& child : node.children) {
          const int32_t entry = NewState();
          states[from].eps.push_back(entry);
          states[Compile(child, entry)].eps.push_back(end);
        }
        return end;
      }
      case RegexNode::Kind::kRepeat: return CompileRepeat(node, from);
    }
    return from;
  }

  int32_t CompileChars(const CharSet& chars, int32_t from) {
    std::vector<std::vector<ByteRange>> sequences;
    for (auto [lo, hi] : chars.ranges) Utf8Sequences(lo, hi, &sequences);
    const int32_t end = NewState();
    for (const auto& seq : sequences) {
      int32_t cur = from;
      for (size_t i = 0; i + 1 < seq.size(); ++i) {
        const int32_t next = NewState();
        states[cur].edges.push_back({seq[i].lo, seq[i].hi, next});
        cur = next;
      }
      states[cur].edges.push_back({seq.back().lo, seq.back().hi, end});
    }
    return end;
  }

  int32_t CompileRepeat(const RegexNode& node, int32_t from) {
    const RegexNode& child = node.children[0];
    int32_t cur = from;
    for (int i = 0; i < node.min && !overflow; ++i) {
      const int32_t entry = NewState();
      states[cur].eps.push_back(entry);
      cur = Compile(child, entry);
    }
    if (node.max < 0) {
      const int32_t loop = NewState(), end = NewState();
      states[cur].eps.push_back(loop);
      states[Compile(child, loop)].eps.push_back(loop);
      states[loop].eps.push_back(end);
      return end;
    }
    // Optional copies x(x(x)?)?: each may skip straight to one shared end, so an
    // epsilon closure never walks the chain of remaining copies.
    const int32_t end = NewState();
    for (int i = node.min; i < node.max && !overflow; ++i) {
      const int32_t entry = NewState();
      states[cur].eps.push_back(entry);
      states[cur].eps.push_back(end);
      cur = Compile(child, entry);
    }
    states[cur].eps.push_back(end);
    return end;
  }

  void Closure(std::vector<int32_t>* set, std::vector<uint32_t>* stamp, uint32_t mark) const {
    std::vector<int32_t> stack(set->begin(), set->end());
    for (int32_t s : *set) (*stamp)[s] = mark;
    while (!stack.empty()) {
      const int32_t s = stack.back();
      stack.pop_back();
      for (int32_t t : states[s].eps)
        if ((*stamp)[t] != mark) {
          (*stamp)[t] = mark;
          set->push_back(t);
          stack.push_back(t);
        }
    }
    std::sort(set->begin(), set->end());
  }
};

}  // namespace

absl::StatusOr<ByteDfa> ByteDfa::Build(const RegexNode& regex, const std::string& field, int64_t max_states) {
  const auto too_complex = [&](const char* what) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": the constraint is too complex (more than ", max_states, " ",
                                                   what, " states; hint: bound string lengths, array items, or nesting)"));
  };
  Nfa nfa;
  nfa.limit = max_states;
  const int32_t nfa_start = nfa.NewState();
  const int32_t nfa_accept = nfa.Compile(regex, nfa_start);
  if (nfa.overflow) return too_complex("NFA");

  ByteDfa dfa;
  std::array<uint8_t, 257> boundary{};
  for (const auto& s : nfa.states)
    for (const auto& e : s.edges) boundary[e.lo] = boundary[e.hi + 1] = 1;
  std::vector<uint8_t> representative;
  for (int b = 0; b < 256; ++b) {
    if (b == 0 || boundary[b]) representative.push_back(static_cast<uint8_t>(b));
    dfa.class_of_[b] = static_cast<uint8_t>(representative.size() - 1);
  }
  dfa.classes_ = static_cast<int>(representative.size());

  std::vector<uint32_t> stamp(nfa.states.size(), 0);
  uint32_t mark = 0;
  absl::flat_hash_map<std::vector<int32_t>, int32_t> index;
  std::vector<std::vector<int32_t>> sets;
  std::vector<int32_t> raw_next;
  auto intern = [&](std::vector<int32_t> set) {
    auto [it, added] = index.emplace(std::move(set), static_cast<int32_t>(sets.size()));
    if (added) sets.push_back(it->first);
    return it->second;
  };
  std::vector<int32_t> initial{nfa_start};
  nfa.Closure(&initial, &stamp, ++mark);
  intern(std::move(initial));
  for (size_t d = 0; d < sets.size(); ++d) {
    if (static_cast<int64_t>(sets.size()) > max_states) return too_complex("DFA");
    for (int c = 0; c < dfa.classes_; ++c) {
      const uint8_t byte = representative[c];
      std::vector<int32_t> moved;
      ++mark;
      for (int32_t s : sets[d])
        for (const auto& e : nfa.states[s].edges)
          if (byte >= e.lo && byte <= e.hi && stamp[e.target] != mark) {
            stamp[e.target] = mark;
            moved.push_back(e.target);
          }
      if (moved.empty()) {
        raw_next.push_back(kDead);
        continue;
      }
      nfa.Closure(&moved, &stamp, ++mark);
      raw_next.push_back(intern(std::move(moved)));
    }
  }

  // Keep the states that can still reach acceptance.
  const int32_t n = static_cast<int32_t>(sets.size());
  std::vector<uint8_t> live(n, 0);
  for (int32_t d = 0; d < n; ++d) live[d] = std::binary_search(sets[d].begin(), sets[d].end(), nfa_accept);
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t d = 0; d < n; ++d) {
      if (live[d]) continue;
      for (int c = 0; c < dfa.classes_ && !live[d]; ++c) {
        const int32_t t = raw_next[static_cast<size_t>(d) * dfa.classes_ + c];
        if (t != kDead && live[t]) live[d] = 1, changed = true;
      }
    }
  }
  if (!live[0]) return absl::InvalidArgumentError(absl::StrCat(field, ": the constraint matches no text at all"));
  std::vector<int32_t> renumber(n, kDead);
  int32_t kept = 0;
  for (int32_t d = 0; d < n; ++d)
    if (live[d]) renumber[d] = kept++;
  dfa.next_.assign(static_cast<size_t>(kept) * dfa.classes_, kDead);
  dfa.accepting_.assign(kept, 0);
  dfa.terminal_.assign(kept, 1);
  for (int32_t d = 0; d < n; ++d) {
    if (!live[d]) continue;
    const int32_t r = renumber[d];
    dfa.accepting_[r] = std::binary_search(sets[d].begin(), sets[d].end(), nfa_accept);
    for (int c = 0; c < dfa.classes_; ++c) {
      const int32_t t = raw_next[static_cast<size_t>(d) * dfa.classes_ + c];
      const int32_t mapped = t == kDead ? kDead : renumber[t];
      dfa.next_[static_cast<size_t>(r) * dfa.classes_ + c] = mapped;
      if (mapped != kDead) dfa.terminal_[r] = 0;
    }
  }
  return dfa;
}

int32_t ByteDfa::Walk(int32_t state, std::string_view bytes) const {
  for (char c : bytes) {
    if (state == kDead) return kDead;
    state = Next(state, static_cast<uint8_t>(c));
  }
  return state;
}

}  // namespace qlorad::constrain
