#include "core/tokenizer/byte_level.h"

#include <array>

#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {
namespace {

struct Tables {
  std::array<std::string, 256> byte_to_char;
  std::array<int, 324> char_to_byte;  // code points used are < 256 + 68
  Tables() {
    char_to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      AppendUtf8(cp, &byte_to_char[b]);
      char_to_byte[cp] = b;
    }
  }
};

const Tables& GetTables() {
  static const Tables* tables = new Tables();
  return *tables;
}

}  // namespace

const std::string& ByteToChar(uint8_t b) { return GetTables().byte_to_char[b]; }

void AppendByteLevel(std::string_view bytes, std::string* out) {
  const Tables& t = GetTables();
  for (unsigned char c : bytes) out->append(t.byte_to_char[c]);
}

int CharToByte(uint32_t code_point) {
  if (code_point >= 324) return -1;
  return GetTables().char_to_byte[code_point];
}

}  // namespace qlorad::tokenizer
