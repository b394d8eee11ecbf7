#include "core/train/data_parallel.h"

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace qlorad {
namespace {

at::Tensor FlatBuffer(const std::vector<at::Tensor>& params, int64_t extra) {
  int64_t total = extra;
  for (const auto& p : params) total += p.numel();
  return at::empty({total}, params.front().options().dtype(at::kFloat));
}

}  // namespace

absl::Status BroadcastParameters(Collective& group, std::vector<at::Tensor>& params) {
  if (group.world_size() == 1 || params.empty()) return absl::OkStatus();
  at::NoGradGuard no_grad;
  at::Tensor flat = FlatBuffer(params, 0);
  int64_t offset = 0;
  for (const auto& p : params) {
    flat.narrow(0, offset, p.numel()).copy_(p.detach().flatten());
    offset += p.numel();
  }
  QLORAD_RETURN_IF_ERROR(BroadcastFromRankZero(group, flat, "the initial adapter (from rank 0)"));
  offset = 0;
  for (auto& p : params) {
    p.copy_(flat.narrow(0, offset, p.numel()).view_as(p));
    offset += p.numel();
  }
  return absl::OkStatus();
}

absl::Status CheckRanksAgree(Collective& group, const std::string& run_identity, int64_t resumed_step) {
  if (group.world_size() == 1) return absl::OkStatus();
  // 40 bits of the identity digest: the sum over ranks cannot overflow int64.
  const int64_t digest = static_cast<int64_t>(std::stoull(run_identity.substr(0, 10), nullptr, 16));
  at::Tensor facts = at::tensor({group.rank() == 0 ? digest : 0, digest, group.rank() == 0 ? resumed_step : 0,
                                 resumed_step}, at::TensorOptions().dtype(at::kLong));
  QLORAD_RETURN_IF_ERROR(group.AllReduceSum(facts, "the run identity check"));
  const int64_t world = group.world_size();
  const int64_t rank0_digest = facts[0].item<int64_t>(), rank0_step = facts[2].item<int64_t>();
  if (facts[1].item<int64_t>() != world * rank0_digest || digest != rank0_digest)
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", group.rank(), " of ", world, ": the ranks do not run the same training (options, dataset, model or "
        "adapter layout differ) (hint: start every rank with the same flags and files)"));
  if (facts[3].item<int64_t>() != world * rank0_step || resumed_step != rank0_step)
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", group.rank(), " resumed from step ", resumed_step, " but rank 0 from step ", rank0_step,
        " (hint: every rank must see the same checkpoint directory, e.g. a shared volume)"));
  return absl::OkStatus();
}

absl::StatusOr<double> AllReduceGradients(Collective& group, const std::vector<at::Tensor>& params, double local_loss,
                                          int64_t step) {
  if (group.world_size() == 1) return local_loss;
  at::NoGradGuard no_grad;
  at::Tensor flat = FlatBuffer(params, 1);
  int64_t offset = 0;
  for (const auto& p : params) {
    at::Tensor slot = flat.narrow(0, offset, p.numel());
    if (p.grad().defined()) {
      slot.copy_(p.grad().flatten());
    } else {
      slot.zero_();
    }
    offset += p.numel();
  }
  flat[offset] = local_loss;
  QLORAD_RETURN_IF_ERROR(group.AllReduceSum(flat, absl::StrCat("the adapter gradients of step ", step + 1)));
  offset = 0;
  for (const auto& p : params) {
    at::Tensor sum = flat.narrow(0, offset, p.numel()).view_as(p).to(p.scalar_type());
    if (p.grad().defined()) {
      p.mutable_grad().copy_(sum);
    } else {
      p.mutable_grad() = sum.clone();
    }
    offset += p.numel();
  }
  return flat[offset].item<double>();
}

absl::StatusOr<bool> AnyRankStops(Collective& group, bool stop, int64_t step) {
  if (group.world_size() == 1) return stop;
  at::Tensor flag = at::tensor({stop ? 1.0f : 0.0f});
  QLORAD_RETURN_IF_ERROR(group.AllReduceSum(flag, absl::StrCat("the stop flag after step ", step)));
  return flag.item<float>() > 0;
}

}  // namespace qlorad
