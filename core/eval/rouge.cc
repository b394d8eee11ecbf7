#include "core/eval/rouge.h"

#include <algorithm>
#include <map>

#include "core/eval/porter_stemmer.h"

namespace qlorad::eval {
namespace {

bool IsTokenChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Python's str.lower() restricted to what survives [^a-z0-9] removal: ASCII A-Z,
// U+0130 (-> "i" + U+0307) and U+212A KELVIN SIGN (-> "k"). Every other non-ASCII
// character lowercases to non-ASCII and becomes a separator anyway.
std::string LowerForRouge(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 'A' && c <= 'Z') {
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if (c == 0xC4 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0xB0) {
      out += "i ";  // the combining dot is a separator
      ++i;
    } else if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x84 &&
               static_cast<unsigned char>(text[i + 2]) == 0xAA) {
      out.push_back('k');
      i += 2;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::map<std::vector<std::string>, int> NGrams(const std::vector<std::string>& tokens, int n) {
  std::map<std::vector<std::string>, int> grams;
  if (n <= 0 || tokens.size() < static_cast<size_t>(n)) return grams;
  for (size_t i = 0; i + n <= tokens.size(); ++i) ++grams[std::vector<std::string>(tokens.begin() + i, tokens.begin() + i + n)];
  return grams;
}

}  // namespace

std::vector<std::string> RougeTokenize(const std::string& text, bool use_stemmer) {
  const std::string lower = LowerForRouge(text);
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&] {
    if (current.empty()) return;
    tokens.push_back(use_stemmer && current.size() > 3 ? PorterStem(current) : current);
    current.clear();
  };
  for (char c : lower) {
    if (IsTokenChar(c)) {
      current.push_back(c);
    } else {
      flush();
    }
  }
  flush();
  // rouge-score's final filter (^[a-z0-9]+$) drops empty tokens; a stem is never empty.
  tokens.erase(std::remove_if(tokens.begin(), tokens.end(), [](const std::string& t) { return t.empty(); }),
               tokens.end());
  return tokens;
}

double RougeFMeasure(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

size_t LcsLength(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

RougeScore RougeLFromTokens(const std::vector<std::string>& target, const std::vector<std::string>& prediction) {
  if (target.empty() || prediction.empty()) return {};
  const double lcs = static_cast<double>(LcsLength(target, prediction));
  RougeScore s;
  s.precision = lcs / prediction.size();
  s.recall = lcs / target.size();
  s.fmeasure = RougeFMeasure(s.precision, s.recall);
  return s;
}

RougeScore RougeL(const std::string& target, const std::string& prediction, bool use_stemmer) {
  return RougeLFromTokens(RougeTokenize(target, use_stemmer), RougeTokenize(prediction, use_stemmer));
}

RougeScore RougeN(const std::string& target, const std::string& prediction, int n, bool use_stemmer) {
  const auto t = NGrams(RougeTokenize(target, use_stemmer), n);
  const auto p = NGrams(RougeTokenize(prediction, use_stemmer), n);
  int overlap = 0, t_count = 0, p_count = 0;
  for (const auto& [gram, count] : t) {
    t_count += count;
    auto it = p.find(gram);
    if (it != p.end()) overlap += std::min(count, it->second);
  }
  for (const auto& [gram, count] : p) p_count += count;
  RougeScore s;
  s.precision = static_cast<double>(overlap) / std::max(p_count, 1);
  s.recall = static_cast<double>(overlap) / std::max(t_count, 1);
  s.fmeasure = RougeFMeasure(s.precision, s.recall);
  return s;
}

}  // namespace qlorad::eval
