// Names that callers choose and that become one component of a path under the state
// directory (dataset ids, adapter names, job and evaluation ids, uploaded and exported
// file names, ...). Every front end (gRPC, OpenAI HTTP, the console, qloractl, review
// import) passes through these two functions before a name touches the file system, so
// there is one rule and one error shape:
//
//   ValidatePathName("dataset_id", "../etc")  ->
//     INVALID_ARGUMENT "dataset_id: '../etc' must not contain '/' (hint: use
//     [A-Za-z0-9][A-Za-z0-9._-]{0,127}: one name, not a path)"
//
// Contract of a valid name: 1..max_length bytes, the first an ASCII letter or digit, the
// rest ASCII letters, digits, '.', '_' or '-' (lowercase letters only when the rules say
// so). Hence never empty, ".", "..", a hidden file, and never a '/', '\\', NUL, space,
// control or non-ASCII byte. PathInside() then joins it to a root and checks that the
// result, with every symlink that exists resolved, still lies below the resolved root
// (so a symlink planted in the state directory cannot redirect a write outside it).
#ifndef QLORAD_CORE_UTIL_PATH_NAME_H_
#define QLORAD_CORE_UTIL_PATH_NAME_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qlorad {

struct PathNameRules {
  size_t max_length = 128;
  bool lowercase_only = false;  // adapter names: [a-z0-9][a-z0-9._-]*
};

// The character-class spelling of `rules`, e.g. "[a-z0-9][a-z0-9._-]{0,63}" (for hints).
std::string PathNamePattern(const PathNameRules& rules = {});

// OK when `value` is a valid name (see above); otherwise INVALID_ARGUMENT whose message
// starts with "<field>: " and names the first offending byte or the length, with a hint.
// The value is C-escaped in the message (NULs and control bytes are visible, never raw).
absl::Status ValidatePathName(absl::string_view field, absl::string_view value, const PathNameRules& rules = {});

// True when `path` is `root` or lies below it, comparing lexically normalised absolute
// paths component by component ("/a/bc" is not inside "/a/b"). Resolve symlinks first
// (std::filesystem::weakly_canonical) when they matter.
bool IsPathInside(const std::string& path, const std::string& root);

// `root` + "/" + `name` after ValidatePathName(field, name, rules), checked to resolve
// (weakly_canonical: existing symlinks followed) strictly below the resolved `root`.
// INVALID_ARGUMENT naming `field` for a bad name or a path that escapes `root`. Returns
// the joined path as written (root + "/" + name), not the resolved one. Creates nothing.
absl::StatusOr<std::string> PathInside(const std::string& root, absl::string_view field, absl::string_view name,
                                       const PathNameRules& rules = {});

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_PATH_NAME_H_
