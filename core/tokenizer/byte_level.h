// GPT-2's reversible byte <-> printable-character table (bytes_to_unicode), used by
// the ByteLevel pre-tokenizer and decoder.
#ifndef QLORAD_CORE_TOKENIZER_BYTE_LEVEL_H_
#define QLORAD_CORE_TOKENIZER_BYTE_LEVEL_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace qlorad::tokenizer {

// UTF-8 of the character that stands for byte `b`.
const std::string& ByteToChar(uint8_t b);
// Appends the byte-level form of `bytes` to `out`.
void AppendByteLevel(std::string_view bytes, std::string* out);
// The byte a character stands for, or -1 if `code_point` is not in the table.
int CharToByte(uint32_t code_point);

// The pre-tokenizing regex of GPT-2 (ByteLevel's use_regex).
inline constexpr const char* kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_BYTE_LEVEL_H_
