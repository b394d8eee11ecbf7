// Streaming input: a chunked file reader that hands out lines (bounded length,
// so a file larger than RAM or a single gigantic line never has to fit in memory)
// and a strict UTF-8 validator.
#ifndef QLORAD_CORE_DATA_TEXT_SOURCE_H_
#define QLORAD_CORE_DATA_TEXT_SOURCE_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/util/sha256.h"

namespace qlorad::data {

// Returns the byte offset of the first invalid UTF-8 sequence (overlong forms, surrogates
// and code points above U+10FFFF are invalid), or npos if `text` is valid.
size_t FindInvalidUtf8(std::string_view text);

// Reads a file sequentially in 1 MiB chunks. Optionally hashes every byte read (the source
// checksum comes for free with parsing). A leading UTF-8 BOM is skipped (but hashed).
class ChunkedFile {
 public:
  static absl::StatusOr<std::unique_ptr<ChunkedFile>> Open(const std::string& path, bool hash);
  ~ChunkedFile();
  ChunkedFile(const ChunkedFile&) = delete;
  ChunkedFile& operator=(const ChunkedFile&) = delete;

  // Reads the next line (without "\n" or a trailing "\r") into *line. Returns false at EOF.
  // A line longer than max_bytes is consumed but not stored: *too_long is set and *line is
  // empty. Read errors are returned as a status naming the file.
  absl::StatusOr<bool> ReadLine(size_t max_bytes, std::string* line, bool* too_long);
  // Next byte, or -1 at EOF (for the CSV parser).
  absl::StatusOr<int> Get();
  // Number of bytes consumed so far.
  uint64_t bytes_read() const { return consumed_; }
  const std::string& path() const { return path_; }
  // Hex SHA-256 of the whole file; only valid once EOF has been reached with hash=true.
  std::string HexDigest();

 private:
  ChunkedFile(std::string path, std::FILE* file, bool hash);
  absl::StatusOr<bool> Refill();  // false at EOF

  std::string path_;
  std::FILE* file_;
  std::unique_ptr<Sha256> sha_;
  std::string digest_;
  std::string buffer_;
  size_t pos_ = 0, end_ = 0;
  uint64_t consumed_ = 0;
  bool eof_ = false;
  bool first_chunk_ = true;
};

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_TEXT_SOURCE_H_
