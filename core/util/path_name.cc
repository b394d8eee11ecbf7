#include "core/util/path_name.h"

#include <filesystem>
#include <iterator>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace qlorad {
namespace {

namespace fs = std::filesystem;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

bool IsAllowedFirst(char c, const PathNameRules& rules) {
  return IsDigit(c) || IsLower(c) || (!rules.lowercase_only && IsUpper(c));
}

bool IsAllowed(char c, const PathNameRules& rules) {
  return IsAllowedFirst(c, rules) || c == '.' || c == '_' || c == '-';
}

// The value as it may appear in a message: C-escaped and cut to 64 bytes.
std::string Quoted(absl::string_view value) {
  const bool cut = value.size() > 64;
  return absl::StrCat("'", absl::CHexEscape(value.substr(0, 64)), cut ? "...'" : "'");
}

absl::Status Invalid(absl::string_view field, absl::string_view what, const PathNameRules& rules) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": ", what, " (hint: use ", PathNamePattern(rules), ": one name, not a path)"));
}

}  // namespace

std::string PathNamePattern(const PathNameRules& rules) {
  const char* letters = rules.lowercase_only ? "a-z0-9" : "A-Za-z0-9";
  return absl::StrCat("[", letters, "][", letters, "._-]{0,", rules.max_length == 0 ? 0 : rules.max_length - 1, "}");
}

absl::Status ValidatePathName(absl::string_view field, absl::string_view value, const PathNameRules& rules) {
  if (value.empty()) return Invalid(field, "must not be empty", rules);
  if (value.size() > rules.max_length)
    return Invalid(field, absl::StrCat(Quoted(value), " is ", value.size(), " bytes long, more than ", rules.max_length), rules);
  // The dangerous bytes get their own words, whatever else is wrong with the name.
  if (value.find('\0') != absl::string_view::npos) return Invalid(field, absl::StrCat(Quoted(value), " contains NUL"), rules);
  if (value.find('/') != absl::string_view::npos)
    return Invalid(field, absl::StrCat(Quoted(value), " must not contain '/'"), rules);
  if (value.find('\\') != absl::string_view::npos)
    return Invalid(field, absl::StrCat(Quoted(value), " must not contain '\\'"), rules);
  if (absl::StrContains(value, ".."))
    return Invalid(field, absl::StrCat(Quoted(value), " must not contain '..'"), rules);
  if (!IsAllowedFirst(value[0], rules))
    return Invalid(field, absl::StrCat(Quoted(value), " must start with a ", rules.lowercase_only ? "lowercase " : "",
                                       "letter or digit"), rules);
  for (size_t i = 1; i < value.size(); ++i) {
    if (!IsAllowed(value[i], rules))
      return Invalid(field, absl::StrCat(Quoted(value), ": character '", absl::CHexEscape(value.substr(i, 1)), "' at offset ",
                                         i, " is not allowed"), rules);
  }
  return absl::OkStatus();
}

bool IsPathInside(const std::string& path, const std::string& root) {
  const fs::path p = fs::path(path).lexically_normal(), r = fs::path(root).lexically_normal();
  auto pi = p.begin();
  for (auto ri = r.begin(); ri != r.end(); ++ri, ++pi) {
    if (ri->empty() && std::next(ri) == r.end()) break;  // "root/" normalises to a trailing empty element
    if (pi == p.end() || *pi != *ri) return false;
  }
  return true;
}

absl::StatusOr<std::string> PathInside(const std::string& root, absl::string_view field, absl::string_view name,
                                       const PathNameRules& rules) {
  if (absl::Status valid = ValidatePathName(field, name, rules); !valid.ok()) return valid;
  if (root.empty()) return absl::InternalError(absl::StrCat(field, ": no root directory to place it under"));
  const std::string joined = absl::StrCat(root, "/", name);
  std::error_code ec;
  const fs::path real_root = fs::weakly_canonical(fs::absolute(root, ec), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot resolve ", root, ": ", ec.message()));
  const fs::path real = fs::weakly_canonical(fs::absolute(joined, ec), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot resolve ", joined, ": ", ec.message()));
  if (real == real_root || !IsPathInside(real.string(), real_root.string()))
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", Quoted(name), " resolves to '", real.string(),
                                                   "', outside '", real_root.string(),
                                                   "' (hint: a symlink in the state directory points elsewhere)"));
  return joined;
}

}  // namespace qlorad
