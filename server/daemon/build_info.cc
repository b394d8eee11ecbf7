#include "server/daemon/build_info.h"

#include <torch/version.h>  // macros only: TORCH_VERSION (no libtorch link needed)

#include "qlorad_git_commit.h"  // generated at build time: QLORAD_GIT_COMMIT

namespace qlorad::server {

const BuildInfo& GetBuildInfo() {
  static const BuildInfo* info = new BuildInfo{QLORAD_VERSION, QLORAD_GIT_COMMIT, TORCH_VERSION,
                                               QLORAD_TORCH_HAS_CUDA ? "true" : "false"};
  return *info;
}

}  // namespace qlorad::server
