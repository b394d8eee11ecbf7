// Port of NLTK's PorterStemmer (NLTK_EXTENSIONS mode); rule order and conditions follow
// nltk/stem/porter.py step by step so results are identical.
#include "core/eval/porter_stemmer.h"

#include <functional>
#include <map>
#include <vector>

namespace qlorad::eval {
namespace {

using Condition = std::function<bool(const std::string&)>;
struct Rule {
  std::string suffix;  // "*d" means "ends in a double consonant"
  std::string replacement;
  Condition condition;  // empty: unconditional
};

bool IsVowelChar(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

bool IsConsonant(const std::string& w, size_t i) {
  if (IsVowelChar(w[i])) return false;
  if (w[i] == 'y') return i == 0 ? true : !IsConsonant(w, i - 1);
  return true;
}

// m in [C](VC){m}[V]: the number of "vc" pairs in the c/v sequence.
int Measure(const std::string& stem) {
  int m = 0;
  for (size_t i = 0; i + 1 < stem.size(); ++i) {
    if (!IsConsonant(stem, i) && IsConsonant(stem, i + 1)) ++m;
  }
  return m;
}

bool HasPositiveMeasure(const std::string& stem) { return Measure(stem) > 0; }

bool ContainsVowel(const std::string& stem) {
  for (size_t i = 0; i < stem.size(); ++i) {
    if (!IsConsonant(stem, i)) return true;
  }
  return false;
}

bool EndsWith(const std::string& w, const std::string& suffix) {
  return w.size() >= suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string DropSuffix(const std::string& w, size_t n) { return w.substr(0, w.size() - n); }

bool EndsDoubleConsonant(const std::string& w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && IsConsonant(w, w.size() - 1);
}

// *o: ends consonant-vowel-consonant, last not w/x/y; NLTK also accepts a 2-letter vc word.
bool EndsCvc(const std::string& w) {
  const size_t n = w.size();
  if (n >= 3 && IsConsonant(w, n - 3) && !IsConsonant(w, n - 2) && IsConsonant(w, n - 1) && w[n - 1] != 'w' &&
      w[n - 1] != 'x' && w[n - 1] != 'y') {
    return true;
  }
  return n == 2 && !IsConsonant(w, 0) && IsConsonant(w, 1);
}

// The first rule whose suffix matches decides: applied if its condition holds,
// otherwise the word is returned unchanged (later rules are not tried).
std::string ApplyRuleList(const std::string& word, const std::vector<Rule>& rules) {
  for (const Rule& rule : rules) {
    if (rule.suffix == "*d" && EndsDoubleConsonant(word)) {
      std::string stem = DropSuffix(word, 2);
      if (!rule.condition || rule.condition(stem)) return stem + rule.replacement;
      return word;
    }
    if (EndsWith(word, rule.suffix)) {
      std::string stem = DropSuffix(word, rule.suffix.size());
      if (!rule.condition || rule.condition(stem)) return stem + rule.replacement;
      return word;
    }
  }
  return word;
}

std::string Step1a(const std::string& word) {
  if (EndsWith(word, "ies") && word.size() == 4) return DropSuffix(word, 3) + "ie";
  return ApplyRuleList(word, {{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}});
}

std::string Step1b(const std::string& word) {
  if (EndsWith(word, "ied")) return DropSuffix(word, 3) + (word.size() == 4 ? "ie" : "i");
  if (EndsWith(word, "eed")) {
    std::string stem = DropSuffix(word, 3);
    return Measure(stem) > 0 ? stem + "ee" : word;
  }
  std::string intermediate;
  bool succeeded = false;
  for (const char* suffix : {"ed", "ing"}) {
    if (EndsWith(word, suffix)) {
      intermediate = DropSuffix(word, std::string(suffix).size());
      if (ContainsVowel(intermediate)) {
        succeeded = true;
        break;
      }
    }
  }
  if (!succeeded) return word;
  const char last = intermediate.back();  // non-empty: it contains a vowel
  return ApplyRuleList(intermediate,
                       {{"at", "ate", {}},
                        {"bl", "ble", {}},
                        {"iz", "ize", {}},
                        {"*d", std::string(1, last),
                         [last](const std::string&) { return last != 'l' && last != 's' && last != 'z'; }},
                        {"", "e", [](const std::string& stem) { return Measure(stem) == 1 && EndsCvc(stem); }}});
}

std::string Step1c(const std::string& word) {
  return ApplyRuleList(word, {{"y", "i", [](const std::string& stem) {
                                 return stem.size() > 1 && IsConsonant(stem, stem.size() - 1);
                               }}});
}

std::string Step2(const std::string& word) {
  if (EndsWith(word, "alli") && HasPositiveMeasure(DropSuffix(word, 4))) {
    return Step2(DropSuffix(word, 4) + "al");
  }
  const Condition pos = HasPositiveMeasure;
  std::vector<Rule> rules = {
      {"ational", "ate", pos}, {"tional", "tion", pos}, {"enci", "ence", pos},   {"anci", "ance", pos},
      {"izer", "ize", pos},    {"bli", "ble", pos},     {"alli", "al", pos},     {"entli", "ent", pos},
      {"eli", "e", pos},       {"ousli", "ous", pos},   {"ization", "ize", pos}, {"ation", "ate", pos},
      {"ator", "ate", pos},    {"alism", "al", pos},    {"iveness", "ive", pos}, {"fulness", "ful", pos},
      {"ousness", "ous", pos}, {"aliti", "al", pos},    {"iviti", "ive", pos},   {"biliti", "ble", pos},
      {"fulli", "ful", pos},
      // NLTK: the measure is taken of the word minus "ogi" (i.e. the stem keeps its "l").
      {"logi", "log", [&word](const std::string&) { return HasPositiveMeasure(DropSuffix(word, 3)); }},
  };
  return ApplyRuleList(word, rules);
}

std::string Step3(const std::string& word) {
  const Condition pos = HasPositiveMeasure;
  return ApplyRuleList(word, {{"icate", "ic", pos},
                              {"ative", "", pos},
                              {"alize", "al", pos},
                              {"iciti", "ic", pos},
                              {"ical", "ic", pos},
                              {"ful", "", pos},
                              {"ness", "", pos}});
}

std::string Step4(const std::string& word) {
  const Condition gt1 = [](const std::string& stem) { return Measure(stem) > 1; };
  return ApplyRuleList(
      word, {{"al", "", gt1},    {"ance", "", gt1}, {"ence", "", gt1}, {"er", "", gt1},    {"ic", "", gt1},
             {"able", "", gt1},  {"ible", "", gt1}, {"ant", "", gt1},  {"ement", "", gt1}, {"ment", "", gt1},
             {"ent", "", gt1},
             {"ion", "", [](const std::string& stem) {
                return Measure(stem) > 1 && (stem.back() == 's' || stem.back() == 't');
              }},
             {"ou", "", gt1},    {"ism", "", gt1},  {"ate", "", gt1},  {"iti", "", gt1},   {"ous", "", gt1},
             {"ive", "", gt1},   {"ize", "", gt1}});
}

std::string Step5a(const std::string& word) {
  if (EndsWith(word, "e")) {
    std::string stem = DropSuffix(word, 1);
    const int m = Measure(stem);
    if (m > 1) return stem;
    if (m == 1 && !EndsCvc(stem)) return stem;
  }
  return word;
}

std::string Step5b(const std::string& word) {
  return ApplyRuleList(word, {{"ll", "l", [&word](const std::string&) { return Measure(DropSuffix(word, 1)) > 1; }}});
}

const std::map<std::string, std::string>& IrregularPool() {
  static const auto* pool = new std::map<std::string, std::string>{
      {"sky", "sky"},         {"skies", "sky"},     {"dying", "die"},         {"lying", "lie"},
      {"tying", "tie"},       {"news", "news"},     {"innings", "inning"},    {"inning", "inning"},
      {"outings", "outing"},  {"outing", "outing"}, {"cannings", "canning"},  {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"}, {"exceed", "exceed"},   {"succeed", "succeed"}};
  return *pool;
}

}  // namespace

std::string PorterStem(const std::string& word) {
  const auto& pool = IrregularPool();
  if (auto it = pool.find(word); it != pool.end()) return it->second;
  if (word.size() <= 2) return word;
  std::string stem = Step1a(word);
  stem = Step1b(stem);
  stem = Step1c(stem);
  stem = Step2(stem);
  stem = Step3(stem);
  stem = Step4(stem);
  stem = Step5a(stem);
  stem = Step5b(stem);
  return stem;
}

}  // namespace qlorad::eval
