// Converts libtorch exceptions into absl::Status at core's edges.
#ifndef QLORAD_CORE_UTIL_TORCH_STATUS_H_
#define QLORAD_CORE_UTIL_TORCH_STATUS_H_

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include <c10/util/Exception.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace qlorad {

// Keeps the first line of a c10::Error: the message without libtorch's C++ backtrace.
std::string TorchErrorSummary(const c10::Error& e);

// Runs `fn` and returns its result; a c10::Error (or std::exception) becomes an
// INTERNAL status prefixed with `what`. `fn` returns void, absl::Status or StatusOr<T>.
template <typename Fn>
auto CatchTorchErrors(const std::string& what, Fn&& fn) {
  using R = std::invoke_result_t<Fn>;
  using Out = std::conditional_t<std::is_void_v<R>, absl::Status, R>;
  try {
    if constexpr (std::is_void_v<R>) {
      std::forward<Fn>(fn)();
      return Out(absl::OkStatus());
    } else {
      return Out(std::forward<Fn>(fn)());
    }
  } catch (const c10::Error& e) {
    return Out(absl::InternalError(absl::StrCat(what, ": ", TorchErrorSummary(e))));
  } catch (const std::exception& e) {
    return Out(absl::InternalError(absl::StrCat(what, ": ", e.what())));
  }
}

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_TORCH_STATUS_H_
