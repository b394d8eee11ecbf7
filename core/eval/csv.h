// RFC 4180 CSV: records end with CRLF; a field containing a comma, double quote, CR
// or LF is enclosed in double quotes with inner quotes doubled. The reader accepts
// CRLF or LF line ends, quoted fields spanning lines, and a final record without a
// line end; it rejects a stray quote inside an unquoted field and an unterminated
// quoted field (INVALID_ARGUMENT naming the line).
#ifndef QLORAD_CORE_EVAL_CSV_H_
#define QLORAD_CORE_EVAL_CSV_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qlorad::eval {

std::string CsvEscapeField(const std::string& field);
std::string CsvRecord(const std::vector<std::string>& fields);  // ends with "\r\n"
absl::StatusOr<std::vector<std::vector<std::string>>> ParseCsv(const std::string& text);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_CSV_H_
