// The daemon's build identity, exported as qlorad_build_info's labels (deploy/METRICS.md).
//
// Contract: every value comes from the build itself, never a literal in code:
//  * version: CMake's project(VERSION) (the single source of the release number);
//  * git_commit: `git rev-parse HEAD` of the source tree, re-read at every build (a new
//    HEAD rebuilds this file only), "unknown" outside a git checkout;
//  * torch_version: TORCH_VERSION of the libtorch headers compiled against (torch/version.h);
//  * cuda: "true" when that libtorch was built with CUDA, else "false".
#ifndef QLORAD_SERVER_DAEMON_BUILD_INFO_H_
#define QLORAD_SERVER_DAEMON_BUILD_INFO_H_

#include <string>

namespace qlorad::server {

struct BuildInfo {
  std::string version;
  std::string git_commit;
  std::string torch_version;
  std::string cuda;
};

const BuildInfo& GetBuildInfo();

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_BUILD_INFO_H_
