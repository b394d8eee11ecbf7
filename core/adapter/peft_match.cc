#include "core/adapter/peft_match.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <algorithm>
#include <memory>

#include <pcre2.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace qlorad {
namespace {

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
using Code = std::unique_ptr<pcre2_code, CodeDeleter>;

// Python str patterns are Unicode-aware (\d, \w over Unicode); UTF + UCP gives the same.
Code Compile(const std::string& pattern, uint32_t flags, std::string* error) {
  int code_error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   flags | PCRE2_UTF | PCRE2_UCP, &code_error, &offset, nullptr);
  if (code == nullptr && error != nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(code_error, buffer, sizeof(buffer));
    *error = absl::StrCat("does not compile at offset ", offset, ": ", reinterpret_cast<char*>(buffer));
  }
  return Code(code);
}

// Matches `code` at the start of `text`; on success *group1 (if given) is capture group 1.
bool MatchAt(const Code& code, const std::string& text, std::string* group1 = nullptr) {
  if (!code) return false;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code.get(), nullptr);
  const int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, md, nullptr);
  if (rc > 1 && group1 != nullptr) {
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    *group1 = text.substr(ov[2], ov[3] - ov[2]);
  }
  pcre2_match_data_free(md);
  return rc >= 0;
}

bool EqualsOrDottedSuffix(const std::vector<std::string>& names, const std::string& module) {
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& name) { return module == name || absl::EndsWith(module, "." + name); });
}

}  // namespace

absl::Status CheckPeftRegex(const std::string& field, const std::string& pattern) {
  std::string error;
  if (Compile(pattern, 0, &error)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": regular expression '", pattern, "' ", error,
                                                 " (hint: PEFT patterns are Python regular expressions)"));
}

bool RegexFullMatch(const std::string& pattern, const std::string& text) {
  return MatchAt(Compile(pattern, PCRE2_ANCHORED | PCRE2_ENDANCHORED, nullptr), text);
}

const std::string* PeftPatternKey(const std::vector<std::string>& keys, const std::string& module) {
  for (const std::string& key : keys)
    if (MatchAt(Compile(absl::StrCat("(.*\\.)?(", key, ")$"), PCRE2_ANCHORED, nullptr), module)) return &key;
  return nullptr;
}

std::optional<int64_t> PeftLayerIndex(const std::string& module, const std::vector<std::string>& layers_pattern) {
  std::vector<std::string> regexes;
  if (layers_pattern.empty()) regexes.push_back(R"(.*?\.[^.]*\.(\d+)\.)");
  for (const std::string& pattern : layers_pattern) regexes.push_back(absl::StrCat(R"(.*?\.)", pattern, R"(\.(\d+)\.)"));
  for (const std::string& regex : regexes) {
    std::string digits;
    if (!MatchAt(Compile(regex, PCRE2_ANCHORED, nullptr), module, &digits) || digits.empty()) continue;
    // Non-ASCII digits (Python's \d is Unicode) or absurd lengths: no index this code could compare.
    if (digits.size() > 15 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    return std::stoll(digits);
  }
  return std::nullopt;
}

bool PeftTargets(const PeftTargetRules& rules, const std::string& module) {
  if (!rules.exclude_modules_regex.empty() ? RegexFullMatch(rules.exclude_modules_regex, module)
                                           : EqualsOrDottedSuffix(rules.exclude_modules, module))
    return false;
  if (!rules.target_modules_regex.empty()) return RegexFullMatch(rules.target_modules_regex, module);
  if (std::find(rules.target_modules.begin(), rules.target_modules.end(), module) != rules.target_modules.end())
    return true;  // named in full: layers_to_transform does not apply (as in PEFT)
  if (!EqualsOrDottedSuffix(rules.target_modules, module)) return false;
  if (rules.layers_to_transform.empty()) return true;
  std::optional<int64_t> layer = PeftLayerIndex(module, rules.layers_pattern);
  return layer && std::find(rules.layers_to_transform.begin(), rules.layers_to_transform.end(), *layer) !=
                      rules.layers_to_transform.end();
}

}  // namespace qlorad
