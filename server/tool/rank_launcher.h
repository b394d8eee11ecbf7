// Local launcher of data-parallel ranks (`qlorad-tool train --world-size N`): starts N
// copies of this program as ranks 0..N-1 of one group on this host, with the env
// contract torchrun sets (MASTER_ADDR=127.0.0.1, MASTER_PORT = a free port, RANK,
// LOCAL_RANK, WORLD_SIZE), and supervises them: when a rank exits with an error or a
// signal, the launcher names it, stops the others (SIGTERM, then SIGKILL after a grace
// period) and fails. Ranks other than 0 run with --quiet.
#ifndef QLORAD_SERVER_TOOL_RANK_LAUNCHER_H_
#define QLORAD_SERVER_TOOL_RANK_LAUNCHER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace qlorad::tool {

// `rank_args`: the subcommand and its flags for every rank (without --world-size).
// OK when every rank exits 0; otherwise ABORTED naming the first rank that failed and how.
absl::Status LaunchLocalRanks(const std::vector<std::string>& rank_args, int world_size);

}  // namespace qlorad::tool

#endif  // QLORAD_SERVER_TOOL_RANK_LAUNCHER_H_
