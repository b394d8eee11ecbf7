#include "core/util/torch_status.h"

namespace qlorad {

std::string TorchErrorSummary(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  size_t newline = msg.find('\n');
  return newline == std::string::npos ? msg : msg.substr(0, newline);
}

}  // namespace qlorad
