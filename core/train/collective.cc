#include "core/train/collective.h"

#include <ATen/ops/zeros_like.h>
#include <ATen/core/grad_mode.h>

namespace qlorad {
namespace {

class SingleProcessCollective : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::string_view backend() const override { return "single"; }
  absl::Status AllReduceSum(at::Tensor&, absl::string_view) override { return absl::OkStatus(); }
  absl::Status Barrier(absl::string_view) override { return absl::OkStatus(); }
};

}  // namespace

std::unique_ptr<Collective> MakeSingleProcessCollective() { return std::make_unique<SingleProcessCollective>(); }

absl::Status BroadcastFromRankZero(Collective& group, at::Tensor& tensor, absl::string_view what) {
  if (group.world_size() == 1) return absl::OkStatus();
  at::NoGradGuard no_grad;
  if (group.rank() != 0) tensor.zero_();
  return group.AllReduceSum(tensor, what);
}

}  // namespace qlorad
