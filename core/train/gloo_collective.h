// The Gloo data-parallel group: libtorch's c10d ProcessGroupGloo over a c10d store.
// Gloo reduces CPU tensors and (through host copies) CUDA tensors, so the same group
// serves a CPU fleet and, less efficiently than NCCL, GPUs.
//
// Rendezvous follows torch.distributed's env contract, which torchrun, Kubeflow's
// PyTorchJob and a Kubernetes Indexed Job can all set: MASTER_ADDR, MASTER_PORT, RANK,
// WORLD_SIZE (LOCAL_RANK optional). Rank 0 hosts a c10d TCPStore on MASTER_PORT; the
// others connect to it. GLOO_SOCKET_IFNAME picks the interface Gloo binds (as in PyTorch).
#ifndef QLORAD_CORE_TRAIN_GLOO_COLLECTIVE_H_
#define QLORAD_CORE_TRAIN_GLOO_COLLECTIVE_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/train/collective.h"

namespace qlorad {

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  // torchrun's agent already serves the store on MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True):
  // then rank 0 connects to it like the others instead of hosting one.
  bool agent_hosts_store = false;
  // How long a collective (and the rendezvous) waits for the slowest rank before it fails.
  absl::Duration timeout = absl::Minutes(5);
};

// The env contract above; nullopt when RANK and WORLD_SIZE are both unset. INVALID_ARGUMENT
// naming the variable for a value that is not a number or out of range.
absl::StatusOr<std::optional<RendezvousOptions>> RendezvousFromEnvironment();

// Joins the group over TCP (blocks until every rank has joined or the timeout passes).
absl::StatusOr<std::unique_ptr<Collective>> JoinGlooGroup(const RendezvousOptions& options);

// Ranks of one process (threads), for a daemon that trains one job on several of its
// devices: `world_size` groups over one in-memory store; Gloo still moves the data over
// loopback TCP. Each group must be used from its own thread.
absl::StatusOr<std::vector<std::unique_ptr<Collective>>> MakeInProcessGlooGroups(int world_size,
                                                                               absl::Duration timeout);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_GLOO_COLLECTIVE_H_
