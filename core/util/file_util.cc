#include "core/util/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace qlorad {
namespace fs = std::filesystem;

absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view path) {
  std::string msg = absl::StrCat(what, " '", path, "': ", std::strerror(err));
  switch (err) {
    case ENOENT: return absl::NotFoundError(msg);
    case EACCES:
    case EPERM: return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return absl::ResourceExhaustedError(msg);
    default: return absl::InternalError(msg);
  }
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, "cannot open", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return ErrnoStatus(errno, "cannot read", path);
  return buffer.str();
}

absl::Status SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return ErrnoStatus(errno, "cannot open directory", dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, "cannot fsync directory", dir);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FileWriter>> FileWriter::Create(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "cannot create", path);
  return std::unique_ptr<FileWriter>(new FileWriter(path, fd));
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status FileWriter::Append(std::string_view bytes) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("'", path_, "' is already closed"));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot write", path_);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FileWriter::Close() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("'", path_, "' is already closed"));
  const int synced = ::fsync(fd_);
  const int sync_err = errno;
  const int closed = ::close(fd_);
  const int close_err = errno;
  fd_ = -1;
  if (synced != 0) return ErrnoStatus(sync_err, "cannot flush", path_);
  if (closed != 0) return ErrnoStatus(close_err, "cannot close", path_);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  fs::path target(path);
  std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  absl::Status status;
  {
    absl::StatusOr<std::unique_ptr<FileWriter>> file = FileWriter::Create(tmp);
    if (!file.ok()) return file.status();
    status = (*file)->Append(contents);
    if (status.ok()) status = (*file)->Close();
  }
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) status = ErrnoStatus(errno, "cannot rename into place", path);
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  return SyncDirectory(dir);
}

absl::Status EnsureDirectory(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create directory", path);
  if (!fs::is_directory(path)) return absl::FailedPreconditionError(absl::StrCat("'", path, "' exists and is not a directory"));
  return absl::OkStatus();
}

absl::Status WriteDirectoryAtomically(const std::string& out_dir,
                                      const std::function<absl::Status(const std::string& tmp_dir)>& fill) {
  fs::path target = fs::path(out_dir).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();  // "out/" -> "out"
  const std::string tmp_dir = absl::StrCat(target.string(), ".tmp-", ::getpid());
  std::error_code ec;
  fs::remove_all(tmp_dir, ec);
  absl::Status status = EnsureDirectory(tmp_dir);
  if (status.ok()) status = fill(tmp_dir);
  if (status.ok()) {
    fs::remove(target, ec);  // an empty directory may stand in the way
    fs::rename(tmp_dir, target, ec);
    if (ec) status = ErrnoStatus(ec.value(), "cannot move the result into", out_dir);
  }
  if (!status.ok()) fs::remove_all(tmp_dir, ec);
  return status;
}

}  // namespace qlorad
