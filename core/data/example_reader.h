// Streaming dataset readers: JSONL in any DatasetFormat, and CSV (RFC 4180, with a
// header) for classification. Memory use is bounded by one line/record, so files
// larger than RAM work.
//
// Errors. Every problem names the file, the line and the field:
//   "<path>:<line>: field '<field>': <message> [<kind>]"
// where <field> is "<line>" for problems with the whole line and <kind> is one of
//   bad_json        the line is not valid JSON
//   wrong_type      a field (or the line) has the wrong JSON type
//   missing_field   a required field is absent (or, for chat, messages is empty / has no assistant turn)
//   unknown_role    a chat message role other than system/user/assistant
//   unknown_format  the format cannot be detected from the line's keys
//   line_too_long   the line/record exceeds ReaderOptions::max_line_bytes (it is skipped unread)
//   invalid_utf8    the line is not valid UTF-8 (the byte offset is named)
//   empty_file      the file contains no examples at all
//   csv_header      the CSV header lacks the required columns (returned by Open())
//   csv_syntax      a quote in an unquoted field, or an unterminated quoted field
//   csv_field_count a CSV record has a different number of fields than the header
//   same_completion a preference line whose chosen and rejected texts are equal
// Bad lines do not stop the reader: up to ReaderOptions::max_errors of them are
// collected, then Next() returns one INVALID_ARGUMENT status listing all of them (at EOF,
// or as soon as max_errors is reached).
#ifndef QLORAD_CORE_DATA_EXAMPLE_READER_H_
#define QLORAD_CORE_DATA_EXAMPLE_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/example.h"
#include "core/data/text_source.h"

namespace qlorad::data {

struct ReaderOptions {
  DatasetFormat format = DatasetFormat::kAuto;  // kAuto: detected from the first parsable line
  bool csv = false;                             // also implied by a ".csv" file name
  size_t max_errors = 20;                       // bad lines collected and reported together (>= 1)
  size_t max_line_bytes = 8u << 20;             // longer lines/records are an error (line_too_long)
  bool hash_source = true;                      // compute the source SHA-256 while reading
};

class ExampleReader {
 public:
  static absl::StatusOr<std::unique_ptr<ExampleReader>> Open(const std::string& path, const ReaderOptions& options);
  virtual ~ExampleReader() = default;

  // Stores the next example and returns true; returns false at EOF when no line was bad.
  // Returns INVALID_ARGUMENT listing the collected errors otherwise (see above).
  absl::StatusOr<bool> Next(Example* example);

  // The format in use (resolved once the first example was read when opened with kAuto).
  DatasetFormat format() const { return format_; }
  const std::string& path() const { return file_->path(); }
  uint64_t bytes_read() const { return file_->bytes_read(); }
  // Hex SHA-256 of the whole file; valid after Next() returned false.
  std::string source_sha256() { return file_->HexDigest(); }
  // The individual error lines collected so far.
  const std::vector<std::string>& errors() const { return errors_; }

 protected:
  ExampleReader(std::unique_ptr<ChunkedFile> file, const ReaderOptions& options)
      : file_(std::move(file)), options_(options), format_(options.format) {}
  // Produces the next example or a per-line error; false at EOF.
  virtual absl::StatusOr<bool> ReadOne(Example* example, int64_t* line, std::optional<FieldError>* error) = 0;

  std::unique_ptr<ChunkedFile> file_;
  ReaderOptions options_;
  DatasetFormat format_;

 private:
  absl::Status ErrorsStatus(bool stopped_early) const;

  std::vector<std::string> errors_;
  int64_t examples_ = 0;
  bool done_ = false;
};

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_EXAMPLE_READER_H_
