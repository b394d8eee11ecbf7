// Small file helpers with absl::Status errors that name the path.
#ifndef QLORAD_CORE_UTIL_FILE_UTIL_H_
#define QLORAD_CORE_UTIL_FILE_UTIL_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qlorad {

// Reads the whole file. NOT_FOUND if it does not exist.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to `path` atomically: a temp file in the same directory,
// fsync, rename over `path`, fsync of the directory. Readers see the old or the
// new contents, never a mix; on error `path` is unchanged.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// Makes `path` (and parents) a directory if it is not one already.
absl::Status EnsureDirectory(const std::string& path);

// Builds a directory as "<out_dir>.tmp-<pid>" with `fill`, then renames it to
// `out_dir` (an empty directory there is replaced): readers see all of it or none.
// On any failure the temporary directory is removed and `out_dir` is untouched.
absl::Status WriteDirectoryAtomically(const std::string& out_dir,
                                      const std::function<absl::Status(const std::string& tmp_dir)>& fill);

// Fsyncs the directory itself, so a rename inside it survives a crash.
absl::Status SyncDirectory(const std::string& dir);

// Returns a status for errno after a failed system call on `path`.
absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view path);

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_FILE_UTIL_H_
