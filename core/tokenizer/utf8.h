// UTF-8 helpers shared by the tokenizers: lossy sanitizing (the exact rule of
// Rust's String::from_utf8_lossy, which is what HF tokenizers' callers see),
// code point encoding and completeness checks for streaming decode.
#ifndef QLORAD_CORE_TOKENIZER_UTF8_H_
#define QLORAD_CORE_TOKENIZER_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace qlorad::tokenizer {

// Debian's abseil has its own string_view type; heterogeneous lookups in absl
// containers need it.
inline absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// "\xEF\xBF\xBD", U+FFFD REPLACEMENT CHARACTER.
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence starting at text[pos], or 0 if the bytes
// there are not a complete, well-formed sequence (overlongs, surrogates and
// code points above U+10FFFF are ill-formed). `*maximal_subpart` (optional)
// receives the length of the maximal ill-formed subpart (>= 1) when 0 is returned.
size_t ValidUtf8SequenceLength(std::string_view text, size_t pos, size_t* maximal_subpart = nullptr);

// True iff `text` is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

// Replaces each maximal ill-formed subpart with U+FFFD (Unicode's "substitution
// of maximal subparts", identical to Rust's String::from_utf8_lossy).
std::string SanitizeUtf8(std::string_view text);

// Appends the UTF-8 encoding of `code_point` (must be <= 0x10FFFF, not a surrogate).
void AppendUtf8(uint32_t code_point, std::string* out);

// Decodes the well-formed sequence at text[pos] of length `len` (from
// ValidUtf8SequenceLength) into its code point.
uint32_t DecodeUtf8(std::string_view text, size_t pos, size_t len);

// Rust's char::is_whitespace (Unicode White_Space).
bool IsUnicodeWhitespace(uint32_t code_point);

// Number of bytes at the end of `bytes` that form an incomplete but so far
// well-formed UTF-8 prefix (0..3): a streaming decoder holds these back.
size_t IncompleteUtf8Suffix(std::string_view bytes);

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_UTF8_H_
