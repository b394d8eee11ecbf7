#include "core/train/multi_device_run.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "core/train/gloo_collective.h"
#include "core/util/status_macros.h"

namespace qlorad {
namespace {

// A collective failure on a rank is a consequence; the rank whose own step failed is the cause.
bool IsCollectiveFailure(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

}  // namespace

absl::StatusOr<TrainingRunResult> RunTrainingOnDevices(const TrainingRunSpec& spec,
                                                       const std::vector<std::string>& devices,
                                                       const TrainingCallback& on_step,
                                                       absl::Duration collective_timeout) {
  if (devices.empty()) return absl::InvalidArgumentError("devices: at least one device");
  if (devices.size() == 1) {
    TrainingRunSpec one = spec;
    one.device = devices.front();
    return RunTraining(one, on_step);
  }
  const int world = static_cast<int>(devices.size());
  QLORAD_ASSIGN_OR_RETURN(auto groups, MakeInProcessGlooGroups(world, collective_timeout));
  std::vector<absl::StatusOr<TrainingRunResult>> results(world, absl::UnknownError("rank did not run"));
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < world; ++rank) {
    ranks.emplace_back([&, rank] {
      TrainingRunSpec mine = spec;
      mine.device = devices[rank];
      results[rank] = RunTraining(mine, rank == 0 ? on_step : TrainingCallback(), groups[rank].get());
    });
  }
  for (auto& t : ranks) t.join();
  int culprit = -1;
  for (int rank = 0; rank < world && culprit < 0; ++rank)
    if (!results[rank].ok() && !IsCollectiveFailure(results[rank].status())) culprit = rank;
  for (int rank = 0; rank < world && culprit < 0; ++rank)
    if (!results[rank].ok()) culprit = rank;
  if (culprit >= 0) {
    const absl::Status& cause = results[culprit].status();
    return absl::Status(cause.code(), absl::StrCat("rank ", culprit, " of ", world, " (device ", devices[culprit],
                                                   "): ", cause.message()));
  }
  return std::move(results[0]);
}

}  // namespace qlorad
