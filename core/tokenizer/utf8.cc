#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {
namespace {

// Expected total length for a lead byte, and the allowed range of the second byte.
struct LeadInfo {
  int length;  // 0 = invalid lead byte
  uint8_t lo;
  uint8_t hi;
};

LeadInfo Lead(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

}  // namespace

size_t ValidUtf8SequenceLength(std::string_view text, size_t pos, size_t* maximal_subpart) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  const LeadInfo info = Lead(p[pos]);
  if (info.length == 1) return 1;
  if (info.length == 0) {
    if (maximal_subpart) *maximal_subpart = 1;
    return 0;
  }
  size_t i = 1;
  for (; i < static_cast<size_t>(info.length); ++i) {
    if (pos + i >= n) break;
    const uint8_t c = p[pos + i];
    const uint8_t lo = i == 1 ? info.lo : 0x80;
    const uint8_t hi = i == 1 ? info.hi : 0xBF;
    if (c < lo || c > hi) break;
  }
  if (i == static_cast<size_t>(info.length)) return i;
  if (maximal_subpart) *maximal_subpart = i;
  return 0;
}

bool IsValidUtf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t len = ValidUtf8SequenceLength(text, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view text) {
  if (IsValidUtf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t bad = 0;
    const size_t len = ValidUtf8SequenceLength(text, pos, &bad);
    if (len > 0) {
      out.append(text.substr(pos, len));
      pos += len;
    } else {
      out.append(kReplacementChar);
      pos += bad;
    }
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t DecodeUtf8(std::string_view text, size_t pos, size_t len) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data()) + pos;
  switch (len) {
    case 1: return p[0];
    case 2: return ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    case 3: return ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    default:
      return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
  }
}

bool IsUnicodeWhitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

size_t IncompleteUtf8Suffix(std::string_view bytes) {
  // Look back at most 3 bytes for a lead byte whose sequence is cut off by the end.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t pos = n - back;
    const uint8_t b = static_cast<uint8_t>(bytes[pos]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const LeadInfo info = Lead(b);
    if (info.length <= static_cast<int>(back)) return 0;  // complete (or invalid) sequence
    size_t bad = 0;
    // A cut-off sequence reports its maximal subpart == all remaining bytes.
    if (ValidUtf8SequenceLength(bytes, pos, &bad) == 0 && bad == back) return back;
    return 0;
  }
  return 0;
}

}  // namespace qlorad::tokenizer
