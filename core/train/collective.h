// Collective: the data-parallel group a training run belongs to. Every rank holds the
// frozen base and the same adapter, trains on its shard of each global batch and sums
// the adapter gradients with AllReduceSum before identical optimizer steps.
//
// The trainer sees only this interface; the single-process group is world size 1 and
// does nothing, the Gloo group (gloo_collective.h) is libtorch's c10d ProcessGroupGloo.
// Calls are collective: every rank must make the same calls in the same order. A call
// that fails (a peer died, or nothing arrived within the group's timeout) returns
// UNAVAILABLE / DEADLINE_EXCEEDED naming this rank and `what`; the group is then broken
// and the run must stop (it resumes from its last checkpoint).
#ifndef QLORAD_CORE_TRAIN_COLLECTIVE_H_
#define QLORAD_CORE_TRAIN_COLLECTIVE_H_

#include <cstdint>
#include <memory>
#include "absl/strings/string_view.h"

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"

namespace qlorad {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // "gloo", "nccl" or "single" (the run record names it).
  virtual absl::string_view backend() const = 0;

  // Sums the contiguous `tensor` over all ranks, in place (every rank gets the sum).
  virtual absl::Status AllReduceSum(at::Tensor& tensor, absl::string_view what) = 0;
  // Returns once every rank has called it.
  virtual absl::Status Barrier(absl::string_view what) = 0;

  // Bytes and seconds spent in AllReduceSum so far (for the run record and the bench).
  int64_t reduced_bytes() const { return reduced_bytes_; }
  double reduce_seconds() const { return reduce_seconds_; }

 protected:
  int64_t reduced_bytes_ = 0;
  double reduce_seconds_ = 0;
};

// World size 1: AllReduceSum and Barrier return at once.
std::unique_ptr<Collective> MakeSingleProcessCollective();

// Copies rank 0's `tensor` to every rank (an AllReduceSum of rank 0's values and zeros).
absl::Status BroadcastFromRankZero(Collective& group, at::Tensor& tensor, absl::string_view what);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_COLLECTIVE_H_
