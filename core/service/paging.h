// List pagination shared by the ServiceCore's List* calls: page_size 1..1000 (0 = 50);
// the page token is the last key of the previous page.
#ifndef QLORAD_CORE_SERVICE_PAGING_H_
#define QLORAD_CORE_SERVICE_PAGING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace qlorad::service {

inline absl::StatusOr<int64_t> ValidatePageSize(int64_t page_size) {
  if (page_size == 0) return 50;
  if (page_size < 0 || page_size > 1000)
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be in [1, 1000], got ", page_size));
  return page_size;
}

// Rows were fetched with limit size + 1: drops the extra row; true when there are more pages.
template <typename Row>
bool TrimPage(std::vector<Row>& rows, int64_t size) {
  if (static_cast<int64_t>(rows.size()) <= size) return false;
  rows.resize(size);
  return true;
}

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_PAGING_H_
