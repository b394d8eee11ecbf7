#include "core/eval/csv.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qlorad::eval {

std::string CsvEscapeField(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string CsvRecord(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += CsvEscapeField(fields[i]);
  }
  out += "\r\n";
  return out;
}

absl::StatusOr<std::vector<std::vector<std::string>>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool in_quotes = false, field_was_quoted = false, any = false;
  int line = 1, quote_line = 0;
  size_t i = 0;
  auto end_field = [&] {
    record.push_back(std::move(field));
    field.clear();
    field_was_quoted = false;
  };
  auto end_record = [&] {
    end_field();
    records.push_back(std::move(record));
    record.clear();
    any = false;
  };
  while (i < text.size()) {
    const char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          i += 2;
          continue;
        }
        in_quotes = false;
        ++i;
        if (i < text.size() && text[i] != ',' && text[i] != '\r' && text[i] != '\n') {
          return absl::InvalidArgumentError(absl::StrCat("CSV line ", line, ": text after a closing quote"));
        }
        continue;
      }
      if (c == '\n') ++line;
      field.push_back(c);
      ++i;
      continue;
    }
    if (c == '"') {
      if (!field.empty() || field_was_quoted) {
        return absl::InvalidArgumentError(
            absl::StrCat("CSV line ", line, ": a double quote inside an unquoted field (hint: quote the field)"));
      }
      in_quotes = field_was_quoted = any = true;
      quote_line = line;
      ++i;
    } else if (c == ',') {
      end_field();
      any = true;
      ++i;
    } else if (c == '\r' || c == '\n') {
      end_record();
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      ++i;
      ++line;
    } else {
      field.push_back(c);
      any = true;
      ++i;
    }
  }
  if (in_quotes) return absl::InvalidArgumentError(absl::StrCat("CSV line ", quote_line, ": unterminated quoted field"));
  if (any || !field.empty() || !record.empty()) end_record();
  return records;
}

}  // namespace qlorad::eval
