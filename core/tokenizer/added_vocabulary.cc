#include "core/tokenizer/added_vocabulary.h"

#include <algorithm>

#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {
namespace {

bool IsWordChar(uint32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

// The code point ending at byte `end` (exclusive) of valid UTF-8 `text`, and its start.
std::pair<uint32_t, size_t> CharBefore(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  const size_t len = ValidUtf8SequenceLength(text, start);
  return {len == 0 ? 0xFFFD : DecodeUtf8(text, start, len), start};
}

std::pair<uint32_t, size_t> CharAt(std::string_view text, size_t pos) {
  const size_t len = ValidUtf8SequenceLength(text, pos);
  return {len == 0 ? 0xFFFD : DecodeUtf8(text, pos, len), len == 0 ? 1 : len};
}

}  // namespace

void TokenMatcher::Build(std::vector<std::pair<std::string, size_t>> tokens) {
  std::stable_sort(tokens.begin(), tokens.end(), [](const auto& a, const auto& b) {
    const auto fa = static_cast<unsigned char>(a.first[0]);
    const auto fb = static_cast<unsigned char>(b.first[0]);
    if (fa != fb) return fa < fb;
    return a.first.size() > b.first.size();
  });
  tokens_ = std::move(tokens);
  first_byte_begin_.assign(257, 0);
  for (const auto& t : tokens_) ++first_byte_begin_[static_cast<unsigned char>(t.first[0]) + 1];
  for (size_t i = 1; i < 257; ++i) first_byte_begin_[i] += first_byte_begin_[i - 1];
}

std::pair<size_t, size_t> TokenMatcher::LongestAt(std::string_view text, size_t pos) const {
  const auto b = static_cast<unsigned char>(text[pos]);
  for (uint32_t i = first_byte_begin_[b]; i < first_byte_begin_[b + 1]; ++i) {
    const std::string& t = tokens_[i].first;
    if (t.size() <= text.size() - pos && text.compare(pos, t.size(), t) == 0) return {t.size(), tokens_[i].second};
  }
  return {0, 0};
}

template <typename InfoFn>
std::vector<AddedSplit> TokenMatcher::Split(std::string_view text, InfoFn info) const {
  std::vector<AddedSplit> splits;
  if (text.empty() || tokens_.empty()) {
    splits.push_back({text, std::nullopt, 0});
    return splits;
  }
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto [len, index] = LongestAt(text, pos);
    if (len == 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = info(index);
    size_t start = pos;
    size_t stop = pos + len;
    if (token.single_word) {
      const bool start_ok = start == 0 || !IsWordChar(CharBefore(text, start).first);
      const bool stop_ok = stop == text.size() || !IsWordChar(CharAt(text, stop).first);
      if (!start_ok || !stop_ok) {
        ++pos;
        continue;
      }
    }
    if (token.lstrip) {
      size_t s = start;
      while (s > start_offset) {
        const auto [c, prev] = CharBefore(text, s);
        if (!IsUnicodeWhitespace(c)) break;
        s = prev;
      }
      start = std::max(s, start_offset);
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        const auto [c, clen] = CharAt(text, stop);
        if (!IsUnicodeWhitespace(c)) break;
        stop += clen;
      }
    }
    if (start_offset < start) splits.push_back({text.substr(start_offset, start - start_offset), std::nullopt, start_offset});
    splits.push_back({text.substr(start, stop - start), token.id, start});
    start_offset = stop;
    pos = stop;
  }
  if (start_offset != text.size()) splits.push_back({text.substr(start_offset), std::nullopt, start_offset});
  return splits;
}

void AddedVocabulary::Add(AddedToken token) {
  const size_t index = tokens_.size();
  by_id_[token.id] = index;
  by_content_[token.content] = index;
  tokens_.push_back(std::move(token));
}

std::vector<AddedSplit> AddedVocabulary::SplitRaw(std::string_view text) const {
  return raw_matcher_.Split(text, [this](size_t i) -> const AddedToken& { return tokens_[i]; });
}

std::vector<AddedSplit> AddedVocabulary::SplitNormalized(std::string_view text) const {
  return normalized_matcher_.Split(text, [this](size_t i) -> const AddedToken& { return tokens_[i]; });
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::FindByContent(std::string_view content) const {
  auto it = by_content_.find(AsAbsl(content));
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

}  // namespace qlorad::tokenizer
