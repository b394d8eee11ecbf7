#include <cstdio>

#include "server/tool/commands.h"

namespace qlorad::tool {

int ReportStatus(const std::string& command, const absl::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "qlorad-tool %s: %s\n", command.c_str(), std::string(status.message()).c_str());
  return 1;
}

}  // namespace qlorad::tool
