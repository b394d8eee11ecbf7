// qlorad-tool tokenize --tokenizer PATH [--no-special]
// Reads one JSON string per line on stdin and writes one JSON array of token ids
// per line on stdout. PATH: a tokenizer.json, a tokenizer.model or a model
// directory. Without --no-special the tokenizer's special tokens (e.g. BOS) are
// added as HF's encode(add_special_tokens=True) does. A lone UTF-16 surrogate
// escape (\ud800) becomes U+FFFD, as in JavaScript/Rust; raw bytes that are not
// UTF-8 are replaced the same way by the tokenizer. A line that is not a JSON
// string is an error naming the line number (exit 1).
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"

namespace qlorad::tool {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseHex4(const std::string& line, size_t pos, uint32_t* out) {
  if (pos + 4 > line.size()) return false;
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    const int h = HexValue(line[pos + i]);
    if (h < 0) return false;
    v = v * 16 + static_cast<uint32_t>(h);
  }
  *out = v;
  return true;
}

// Parses a line holding exactly one JSON string (surrounding whitespace allowed).
absl::StatusOr<std::string> ParseJsonStringLine(const std::string& line) {
  size_t pos = line.find_first_not_of(" \t\r");
  if (pos == std::string::npos || line[pos] != '"') return absl::InvalidArgumentError("expected a JSON string");
  ++pos;
  std::string out;
  while (true) {
    if (pos >= line.size()) return absl::InvalidArgumentError("unterminated JSON string");
    const char c = line[pos++];
    if (c == '"') break;
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (pos >= line.size()) return absl::InvalidArgumentError("unterminated escape");
    const char e = line[pos++];
    switch (e) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '/': out.push_back('/'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        uint32_t cp = 0;
        if (!ParseHex4(line, pos, &cp)) return absl::InvalidArgumentError("bad \\u escape");
        pos += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t low = 0;
          if (pos + 6 <= line.size() && line[pos] == '\\' && line[pos + 1] == 'u' && ParseHex4(line, pos + 2, &low) &&
              low >= 0xDC00 && low <= 0xDFFF) {
            pos += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else {
            cp = 0xFFFD;
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = 0xFFFD;
        }
        tokenizer::AppendUtf8(cp, &out);
        break;
      }
      default:
        return absl::InvalidArgumentError(absl::StrCat("bad escape '\\", std::string(1, e), "'"));
    }
  }
  if (line.find_first_not_of(" \t\r", pos) != std::string::npos) {
    return absl::InvalidArgumentError("trailing characters after the JSON string");
  }
  return out;
}

}  // namespace

int RunTokenize(const Args& args) {
  auto flags = Flags::Parse(args, {"tokenizer"}, {"no-special", "help"});
  if (!flags.ok()) return ReportStatus("tokenize", flags.status());
  if (flags->GetBool("help")) {
    std::fprintf(stdout,
                 "usage: qlorad-tool tokenize --tokenizer PATH [--no-special]\n"
                 "  stdin: one JSON string per line; stdout: one JSON array of ids per line.\n"
                 "  PATH: tokenizer.json, tokenizer.model or a model directory.\n");
    return 0;
  }
  auto path = flags->GetRequired("tokenizer");
  if (!path.ok()) return ReportStatus("tokenize", path.status());
  auto tok = tokenizer::Tokenizer::Load(*path);
  if (!tok.ok()) return ReportStatus("tokenize", tok.status());
  const bool add_special = !flags->GetBool("no-special");
  std::ios::sync_with_stdio(false);
  std::string line;
  std::string out;
  size_t line_number = 0;
  while (std::getline(std::cin, line)) {
    ++line_number;
    auto text = ParseJsonStringLine(line);
    if (!text.ok()) {
      return ReportStatus("tokenize", absl::InvalidArgumentError(absl::StrCat("stdin line ", line_number, ": ",
                                                                              text.status().message())));
    }
    auto ids = (*tok)->Encode(*text, add_special);
    if (!ids.ok()) {
      return ReportStatus("tokenize", absl::Status(ids.status().code(), absl::StrCat("stdin line ", line_number, ": ",
                                                                                     ids.status().message())));
    }
    out.clear();
    out.push_back('[');
    for (size_t i = 0; i < ids->size(); ++i) absl::StrAppend(&out, i ? "," : "", (*ids)[i]);
    out += "]\n";
    std::cout << out;
  }
  std::cout.flush();
  return 0;
}

}  // namespace qlorad::tool
