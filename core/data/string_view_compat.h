// Debian's abseil (20220623) is built with its own absl::string_view, which does not
// convert from std::string_view. These two helpers bridge the types (internal to core/data).
#ifndef QLORAD_CORE_DATA_STRING_VIEW_COMPAT_H_
#define QLORAD_CORE_DATA_STRING_VIEW_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace qlorad::data {

inline absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view ToStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_STRING_VIEW_COMPAT_H_
