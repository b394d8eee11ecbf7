#include "server/tool/flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace qlorad::tool {

absl::StatusOr<Flags> Flags::Parse(const std::vector<std::string>& args,
                                   const std::set<std::string>& value_flags,
                                   const std::set<std::string>& bool_flags) {
  Flags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "-h" && bool_flags.count("help")) arg = "--help";  // the short form of --help
    if (!absl::ConsumePrefix(&arg, "--")) {
      flags.positional_.emplace_back(arg);
      continue;
    }
    std::string name(arg);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (bool_flags.count(name)) {
      if (value) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      flags.values_[name] = "true";
    } else if (value_flags.count(name)) {
      if (!value) {
        if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        value = args[++i];
      }
      flags.values_[name] = *value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
  }
  return flags;
}

absl::StatusOr<std::string> Flags::GetRequired(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return absl::InvalidArgumentError(absl::StrCat("missing required flag --", name));
  return it->second;
}

std::string Flags::GetOr(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

absl::StatusOr<long long> Flags::GetInt(const std::string& name, std::optional<long long> fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    if (fallback) return *fallback;
    return absl::InvalidArgumentError(absl::StrCat("missing required flag --", name));
  }
  long long value;
  if (!absl::SimpleAtoi(it->second, &value))
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be an integer, got '", it->second, "'"));
  return value;
}

absl::StatusOr<double> Flags::GetDouble(const std::string& name, std::optional<double> fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    if (fallback) return *fallback;
    return absl::InvalidArgumentError(absl::StrCat("missing required flag --", name));
  }
  double value;
  if (!absl::SimpleAtod(it->second, &value))
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be a number, got '", it->second, "'"));
  return value;
}

absl::StatusOr<std::vector<long long>> ParseIntList(const std::string& flag, const std::string& text) {
  std::vector<long long> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    long long value;
    if (!absl::SimpleAtoi(item, &value))
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": '", item, "' is not an integer"));
    out.push_back(value);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, " is empty"));
  return out;
}

}  // namespace qlorad::tool
