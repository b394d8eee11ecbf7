// Status propagation helpers. Debian's abseil (20220623) ships no status macros.
#ifndef QLORAD_CORE_UTIL_STATUS_MACROS_H_
#define QLORAD_CORE_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define QLORAD_STATUS_CONCAT_INNER_(a, b) a##b
#define QLORAD_STATUS_CONCAT_(a, b) QLORAD_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function if not OK.
#define QLORAD_RETURN_IF_ERROR(expr)                  \
  do {                                                \
    ::absl::Status qlorad_status_ = (expr);           \
    if (!qlorad_status_.ok()) return qlorad_status_;  \
  } while (false)

// `lhs = value of rexpr (an absl::StatusOr<T>)`, or returns its status if not OK.
#define QLORAD_ASSIGN_OR_RETURN(lhs, rexpr) \
  QLORAD_ASSIGN_OR_RETURN_IMPL_(QLORAD_STATUS_CONCAT_(qlorad_statusor_, __LINE__), lhs, rexpr)

#define QLORAD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()

#endif  // QLORAD_CORE_UTIL_STATUS_MACROS_H_
