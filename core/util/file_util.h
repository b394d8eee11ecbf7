// Small file helpers with absl::Status errors that name the path.
#ifndef QLORAD_CORE_UTIL_FILE_UTIL_H_
#define QLORAD_CORE_UTIL_FILE_UTIL_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qlorad {

// Reads the whole file. NOT_FOUND if it does not exist.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// A file written front to back, every error naming it (ErrnoStatus codes: a full volume
// is RESOURCE_EXHAUSTED). Create truncates; Append writes every byte (unbuffered); Close
// fsyncs and closes. The destructor closes without syncing. A writer never removes its
// file: the caller removes one whose writing failed.
class FileWriter {
 public:
  static absl::StatusOr<std::unique_ptr<FileWriter>> Create(const std::string& path);
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  absl::Status Append(std::string_view bytes);
  absl::Status Close();
  const std::string& path() const { return path_; }

 private:
  FileWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

// Writes `contents` to `path` atomically: a temp file in the same directory,
// fsync, rename over `path`, fsync of the directory. Readers see the old or the
// new contents, never a mix; on error `path` is unchanged and the temp file removed.
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

// Returns a status for errno after a failed system call on `path`; the message is
// "<what> '<path>': <strerror>". The code says what the caller can do about it:
// NOT_FOUND (ENOENT), PERMISSION_DENIED (EACCES, EPERM), RESOURCE_EXHAUSTED (ENOSPC,
// EDQUOT, EFBIG: the volume or quota is full; free space and retry), INTERNAL otherwise.
absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view path);

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_FILE_UTIL_H_
