#include "core/tokenizer/pattern.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace qlorad::tokenizer {

absl::StatusOr<Pattern> Pattern::FromJson(const nlohmann::json& json, const std::string& where) {
  Pattern pattern;
  if (json.is_object() && json.contains("String") && json["String"].is_string()) {
    pattern.literal_ = json["String"].get<std::string>();
    return pattern;
  }
  if (json.is_object() && json.contains("Regex") && json["Regex"].is_string()) {
    auto regex = Regex::Create(json["Regex"].get<std::string>());
    if (!regex.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", regex.status().message()));
    pattern.regex_ = std::move(*regex);
    return pattern;
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ": expected {\"String\": ...} or {\"Regex\": ...}"));
}

Pattern Pattern::Literal(std::string literal) {
  Pattern pattern;
  pattern.literal_ = std::move(literal);
  return pattern;
}

void Pattern::FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const {
  if (regex_) {
    regex_->FindAll(text, matches);
    return;
  }
  matches->clear();
  if (literal_.empty()) return;
  size_t pos = 0;
  while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
    matches->emplace_back(pos, pos + literal_.size());
    pos += literal_.size();
  }
}

std::string Pattern::ReplaceAll(std::string_view text, std::string_view content) const {
  std::vector<std::pair<size_t, size_t>> matches;
  FindAll(text, &matches);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (begin == end) continue;
    out.append(text.substr(prev, begin - prev));
    out.append(content);
    prev = end;
  }
  out.append(text.substr(prev));
  return out;
}

}  // namespace qlorad::tokenizer
