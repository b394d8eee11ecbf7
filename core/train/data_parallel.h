// The trainer's data-parallel steps over a Collective (internal to core/train). All are
// collective calls: every rank makes them in the same order; with world size 1 they
// return at once without touching the tensors.
#ifndef QLORAD_CORE_TRAIN_DATA_PARALLEL_H_
#define QLORAD_CORE_TRAIN_DATA_PARALLEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "core/train/collective.h"

namespace qlorad {

// Gives every rank rank 0's parameter values (as DDP does at construction), so ranks
// that initialised their adapters differently still train one adapter.
absl::Status BroadcastParameters(Collective& group, std::vector<at::Tensor>& params);

// FAILED_PRECONDITION naming the first disagreement unless every rank has the same run
// identity (options, examples, adapter layout) and resumed from the same step.
absl::Status CheckRanksAgree(Collective& group, const std::string& run_identity, int64_t resumed_step);

// Sums the parameters' gradients (undefined = zeros) and `local_loss` over all ranks in
// one flat fp32 buffer, writes the sums back into .grad, and returns the summed loss.
absl::StatusOr<double> AllReduceGradients(Collective& group, const std::vector<at::Tensor>& params, double local_loss,
                                          int64_t step);

// True on every rank when any rank asked to stop (cancellation reaches all ranks at the
// same step).
absl::StatusOr<bool> AnyRankStops(Collective& group, bool stop, int64_t step);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_DATA_PARALLEL_H_
