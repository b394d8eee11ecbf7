#include "core/data/example_reader.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/data/string_view_compat.h"
#include "core/util/status_macros.h"

namespace qlorad::data {
namespace {

using nlohmann::json;

bool IsBlank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

FieldError TooLong(size_t max_bytes) {
  return {"line_too_long", "<line>",
          absl::StrCat("longer than ", max_bytes, " bytes, skipped (hint: raise max_line_bytes or split the record)")};
}

std::optional<FieldError> CheckUtf8(std::string_view text) {
  size_t bad = FindInvalidUtf8(text);
  if (bad == std::string_view::npos) return std::nullopt;
  return FieldError{"invalid_utf8", "<line>",
                    absl::StrCat("invalid UTF-8 at byte ", bad + 1, " (hint: re-encode the file as UTF-8)")};
}

// ---------------------------------------------------------------- JSONL
class JsonlReader : public ExampleReader {
 public:
  using ExampleReader::ExampleReader;

 protected:
  absl::StatusOr<bool> ReadOne(Example* example, int64_t* line_no, std::optional<FieldError>* error) override {
    for (;;) {
      bool too_long = false;
      QLORAD_ASSIGN_OR_RETURN(bool got, file_->ReadLine(options_.max_line_bytes, &line_, &too_long));
      if (!got) return false;
      *line_no = ++line_number_;
      if (too_long) {
        *error = TooLong(options_.max_line_bytes);
        return true;
      }
      if (IsBlank(line_)) continue;
      if ((*error = CheckUtf8(line_))) return true;
      json object = json::parse(line_, nullptr, /*allow_exceptions=*/false);
      if (object.is_discarded()) {
        // Re-parse with exceptions only to get the position for the message.
        std::string detail;
        try {
          json ignored = json::parse(line_);
          (void)ignored;
        } catch (const json::parse_error& e) {
          detail = absl::StrCat(" at byte ", e.byte);
        } catch (const json::exception&) {
          // Not a syntax error: the only other parse failure is a number beyond a double (1e999).
          *error = FieldError{"bad_json", "<line>",
                              "not valid JSON: a number out of range (hint: numbers must fit a double; quote it "
                              "if it is an identifier)"};
          return true;
        }
        *error =
            FieldError{"bad_json", "<line>",
                       absl::StrCat("not valid JSON", detail, " (hint: one JSON object per line, no trailing commas)")};
        return true;
      }
      if (format_ == DatasetFormat::kAuto) {
        std::optional<DatasetFormat> detected = DetectFormat(object);
        if (!detected) {
          *error = FieldError{"unknown_format", "<line>",
                              "cannot tell the format from the keys (hint: expected messages, instruction, "
                              "prompt/completion or text/label; or set the format explicitly)"};
          return true;
        }
        format_ = *detected;
      }
      if ((*error = ExampleFromJson(object, format_, example))) return true;
      example->line = *line_no;
      if (example->source_line == 0) example->source_line = *line_no;
      return true;
    }
  }

 private:
  std::string line_;
  int64_t line_number_ = 0;
};

// ---------------------------------------------------------------- CSV (RFC 4180)
class CsvReader : public ExampleReader {
 public:
  using ExampleReader::ExampleReader;

  // Reads and checks the header.
  absl::Status ReadHeader() {
    std::vector<std::string> header;
    std::optional<FieldError> error;
    int64_t line = 0;
    QLORAD_ASSIGN_OR_RETURN(bool got, ReadRecord(&header, &line, &error));
    if (!got) return absl::OkStatus();  // empty file: reported by Next()
    auto fail = [&](std::string_view message) {
      return absl::InvalidArgumentError(
          absl::StrCat(path(), ":", line, ": field '<header>': ", ToAbsl(message), " [csv_header]"));
    };
    if (error) return fail(error->message);
    for (size_t i = 0; i < header.size(); ++i) {
      std::string name(header[i]);
      if (i == 0 && absl::StartsWith(name, "\xEF\xBB\xBF")) name = name.substr(3);
      columns_.push_back(name);
    }
    auto has = [&](const char* c) { return std::find(columns_.begin(), columns_.end(), c) != columns_.end(); };
    if (!has("text") || !(has("label") || (has("label_a") && has("label_b")))) {
      return fail(absl::StrCat("header '", absl::StrJoin(columns_, ","),
                               "' needs a 'text' column and 'label' (or 'label_a' and 'label_b')"));
    }
    return absl::OkStatus();
  }

 protected:
  absl::StatusOr<bool> ReadOne(Example* example, int64_t* line_no, std::optional<FieldError>* error) override {
    std::vector<std::string> fields;
    for (;;) {
      QLORAD_ASSIGN_OR_RETURN(bool got, ReadRecord(&fields, line_no, error));
      if (!got) return false;
      if (*error) return true;
      if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
      break;
    }
    if (fields.size() != columns_.size()) {
      *error = FieldError{"csv_field_count", "<line>",
                          absl::StrCat(fields.size(), " fields but the header has ", columns_.size(),
                                       " (hint: quote fields that contain commas)")};
      return true;
    }
    json object = json::object();
    for (size_t i = 0; i < fields.size(); ++i) {
      if (size_t bad = FindInvalidUtf8(fields[i]); bad != std::string_view::npos) {
        *error =
            FieldError{"invalid_utf8", columns_[i],
                       absl::StrCat("invalid UTF-8 at byte ", bad + 1, " of the field (hint: re-encode as UTF-8)")};
        return true;
      }
      if (columns_[i] == "text") {
        object["text"] = fields[i];
      } else if (!fields[i].empty()) {
        object[columns_[i]] = fields[i];
      }
    }
    if ((*error = ExampleFromJson(object, DatasetFormat::kClassification, example))) return true;
    example->line = *line_no;
    example->source_line = *line_no;
    return true;
  }

 private:
  // One RFC 4180 record; *line_no is the line it starts on. Returns false at EOF.
  absl::StatusOr<bool> ReadRecord(std::vector<std::string>* fields, int64_t* line_no,
                                  std::optional<FieldError>* error) {
    fields->clear();
    error->reset();
    *line_no = line_ + 1;
    std::string field;
    size_t record_bytes = 0;
    bool any = false, quoted = false, in_quotes = false, after_quote = false;
    for (;;) {
      QLORAD_ASSIGN_OR_RETURN(int c, file_->Get());
      if (c < 0) {
        if (!any) return false;
        if (in_quotes && !*error) {
          *error = FieldError{"csv_syntax", absl::StrCat("column ", fields->size() + 1),
                              "unterminated quoted field (hint: double any quote inside quotes: \"\")"};
        }
        break;
      }
      any = true;
      if (++record_bytes > options_.max_line_bytes && !*error) *error = TooLong(options_.max_line_bytes);
      if (in_quotes) {
        if (c == '"') {
          in_quotes = false;
          after_quote = true;
        } else {
          if (c == '\n') ++line_;
          if (!*error) field.push_back(static_cast<char>(c));
        }
        continue;
      }
      if (c == '"') {
        if (after_quote) {  // "" inside a quoted field
          field.push_back('"');
          in_quotes = true;
          after_quote = false;
        } else if (field.empty() && !quoted) {
          quoted = in_quotes = true;
        } else if (!*error) {
          *error = FieldError{"csv_syntax", absl::StrCat("column ", fields->size() + 1),
                              "quote inside an unquoted field (hint: quote the whole field and double inner quotes)"};
        }
        continue;
      }
      if (c == ',' || c == '\n') {
        if (!field.empty() && field.back() == '\r' && c == '\n' && !quoted) field.pop_back();
        fields->push_back(std::move(field));
        field.clear();
        quoted = after_quote = false;
        if (c == '\n') {
          ++line_;
          return true;
        }
        continue;
      }
      if (c == '\r' && after_quote) continue;  // CRLF after a closing quote
      if (after_quote && !*error) {
        *error = FieldError{"csv_syntax", absl::StrCat("column ", fields->size() + 1),
                            "characters after a closing quote (hint: quote the whole field)"};
      }
      if (!*error) field.push_back(static_cast<char>(c));
    }
    if (!field.empty() && field.back() == '\r' && !quoted) field.pop_back();
    fields->push_back(std::move(field));
    return true;
  }

  std::vector<std::string> columns_;
  int64_t line_ = 0;  // newlines consumed so far
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExampleReader>> ExampleReader::Open(const std::string& path,
                                                                   const ReaderOptions& options) {
  ReaderOptions opts = options;
  opts.max_errors = std::max<size_t>(1, opts.max_errors);
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<ChunkedFile> file, ChunkedFile::Open(path, opts.hash_source));
  if (opts.csv || absl::EndsWithIgnoreCase(path, ".csv")) {
    if (opts.format != DatasetFormat::kAuto && opts.format != DatasetFormat::kClassification) {
      return absl::InvalidArgumentError(absl::StrCat(path,
                                                     ": CSV input is only supported for the classification "
                                                     "format (hint: use JSONL for ",
                                                     ToAbsl(FormatName(opts.format)), ")"));
    }
    opts.format = DatasetFormat::kClassification;
    auto reader = std::unique_ptr<CsvReader>(new CsvReader(std::move(file), opts));
    QLORAD_RETURN_IF_ERROR(reader->ReadHeader());
    return std::unique_ptr<ExampleReader>(std::move(reader));
  }
  return std::unique_ptr<ExampleReader>(new JsonlReader(std::move(file), opts));
}

absl::StatusOr<bool> ExampleReader::Next(Example* example) {
  if (done_) return ErrorsStatus(false);
  for (;;) {
    int64_t line = 0;
    std::optional<FieldError> error;
    QLORAD_ASSIGN_OR_RETURN(bool got, ReadOne(example, &line, &error));
    if (!got) {
      done_ = true;
      if (examples_ == 0 && errors_.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(path(),
                                                       ":1: field '<file>': the file contains no examples "
                                                       "(hint: is it the right file?) [empty_file]"));
      }
      return errors_.empty() ? absl::StatusOr<bool>(false) : ErrorsStatus(false);
    }
    if (error) {
      errors_.push_back(
          absl::StrCat(path(), ":", line, ": field '", error->field, "': ", error->message, " [", error->kind, "]"));
      if (errors_.size() >= options_.max_errors) {
        done_ = true;
        return ErrorsStatus(true);
      }
      continue;
    }
    ++examples_;
    return true;
  }
}

absl::Status ExampleReader::ErrorsStatus(bool stopped_early) const {
  std::string head = absl::StrCat(path(), ": ", errors_.size(), " bad line", errors_.size() == 1 ? "" : "s");
  if (stopped_early) absl::StrAppend(&head, " (stopped at max_errors=", options_.max_errors, "; fix these first)");
  return absl::InvalidArgumentError(absl::StrCat(head, ":\n  ", absl::StrJoin(errors_, "\n  ")));
}

}  // namespace qlorad::data
