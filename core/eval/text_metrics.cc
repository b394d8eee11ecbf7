#include "core/eval/text_metrics.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <cstring>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace qlorad::eval {
namespace {

bool IsAsciiSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsPunct(char c) { return std::strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) != nullptr && c != '\0'; }

std::vector<std::string> SplitWhitespace(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (IsAsciiSpace(c)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace

std::string SquadNormalize(const std::string& text) {
  // Order as in the SQuAD script: lower -> remove punctuation -> remove articles -> whitespace.
  std::string s;
  for (char c : text) {
    if (IsPunct(c)) continue;
    s.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  // Python's \b(a|an|the)\b with re.UNICODE: an article is removed (replaced by a
  // space) when it is a whole word; word characters are Unicode letters/digits/_,
  // so a byte >= 0x80 next to it counts as a word character (conservatively).
  auto is_word = [](unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; };
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    bool removed = false;
    if (i == 0 || !is_word(static_cast<unsigned char>(s[i - 1]))) {
      for (const char* art : {"the", "an", "a"}) {
        const size_t n = std::strlen(art);
        if (s.compare(i, n, art) == 0 && (i + n == s.size() || !is_word(static_cast<unsigned char>(s[i + n])))) {
          out.push_back(' ');
          i += n;
          removed = true;
          break;
        }
      }
    }
    if (!removed) out.push_back(s[i++]);
  }
  std::string joined;
  for (const std::string& t : SplitWhitespace(out)) {
    if (!joined.empty()) joined.push_back(' ');
    joined += t;
  }
  return joined;
}

std::vector<std::string> SquadTokens(const std::string& text) { return SplitWhitespace(SquadNormalize(text)); }

double ExactMatch(const std::string& prediction, const std::string& reference) {
  return SquadNormalize(prediction) == SquadNormalize(reference) ? 1.0 : 0.0;
}

double StrictExactMatch(const std::string& prediction, const std::string& reference) {
  auto trim = [](const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e && IsAsciiSpace(s[b])) ++b;
    while (e > b && IsAsciiSpace(s[e - 1])) --e;
    return s.substr(b, e - b);
  };
  return trim(prediction) == trim(reference) ? 1.0 : 0.0;
}

double TokenF1(const std::string& prediction, const std::string& reference) {
  const auto pred = SquadTokens(prediction);
  const auto ref = SquadTokens(reference);
  if (pred.empty() || ref.empty()) return pred.empty() && ref.empty() ? 1.0 : 0.0;
  std::map<std::string, int> ref_counts;
  for (const auto& t : ref) ++ref_counts[t];
  int common = 0;
  for (const auto& t : pred) {
    auto it = ref_counts.find(t);
    if (it != ref_counts.end() && it->second > 0) {
      --it->second;
      ++common;
    }
  }
  if (common == 0) return 0.0;
  const double p = static_cast<double>(common) / pred.size();
  const double r = static_cast<double>(common) / ref.size();
  return 2 * p * r / (p + r);
}

FormatChecker::FormatChecker(Kind kind, std::string description, void* code)
    : kind_(kind), description_(std::move(description)), code_(code) {}

FormatChecker::~FormatChecker() {
  if (code_ != nullptr) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

absl::StatusOr<std::unique_ptr<FormatChecker>> FormatChecker::CreateRegex(const std::string& pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error_code, buffer, sizeof(buffer));
    return absl::InvalidArgumentError(absl::StrCat("format regex '", pattern, "' does not compile at offset ",
                                                   error_offset, ": ", reinterpret_cast<const char*>(buffer)));
  }
  return std::unique_ptr<FormatChecker>(new FormatChecker(Kind::kRegex, absl::StrCat("regex: ", pattern), code));
}

std::unique_ptr<FormatChecker> FormatChecker::CreateJson(bool require_object) {
  return std::unique_ptr<FormatChecker>(new FormatChecker(require_object ? Kind::kJsonObject : Kind::kJson,
                                                          require_object ? "JSON object" : "JSON value", nullptr));
}

bool FormatChecker::Matches(const std::string& output) const {
  if (kind_ != Kind::kRegex) {
    nlohmann::json j = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return false;
    return kind_ == Kind::kJson || j.is_object();
  }
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(output.data()), output.size(), 0, 0, md, nullptr);
  pcre2_match_data_free(md);
  return rc >= 0;  // invalid UTF-8 input (rc < 0) does not adhere
}

}  // namespace qlorad::eval
