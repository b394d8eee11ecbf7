// One training run over several devices of one process: a rank thread per device, the
// ranks joined by in-process Gloo groups (gloo_collective.h), each rank a RunTraining
// with its device (data parallelism as trainer.h describes). What a daemon that owns
// several devices does with a job that asks for more than one.
#ifndef QLORAD_CORE_TRAIN_MULTI_DEVICE_RUN_H_
#define QLORAD_CORE_TRAIN_MULTI_DEVICE_RUN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/train/training_run.h"

namespace qlorad {

// Runs `spec` on `devices` (spec.device is ignored; one device = plain RunTraining).
// `on_step` sees rank 0's events; its false cancels every rank at the same step. The
// result is rank 0's. When ranks fail, the error is the first rank's own failure (not the
// collective errors it caused on the others), naming that rank and its device. A rank
// that stops answering fails the others after `collective_timeout`.
absl::StatusOr<TrainingRunResult> RunTrainingOnDevices(const TrainingRunSpec& spec,
                                                       const std::vector<std::string>& devices,
                                                       const TrainingCallback& on_step,
                                                       absl::Duration collective_timeout);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_MULTI_DEVICE_RUN_H_
