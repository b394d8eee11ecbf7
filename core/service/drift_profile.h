// The "drift" step's reference: when a job finishes, the prompts of its training split
// (rendered as a request carries them: everything before the completion) are profiled
// into DIR/drift_profile.json, which DriftTracker::Watch compares production prompts to.
#ifndef QLORAD_CORE_SERVICE_DRIFT_PROFILE_H_
#define QLORAD_CORE_SERVICE_DRIFT_PROFILE_H_

#include <string>

#include "absl/status/status.h"
#include "core/data/dataset_store.h"
#include "core/serve/serving_engine.h"
#include "core/service/drift_tracker.h"

namespace qlorad::service {

absl::Status BuildDriftProfile(const data::DatasetStore& datasets, serve::ServingEngine& engine, DriftTracker& drift,
                               const std::string& dataset_id, const std::string& dir);

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_DRIFT_PROFILE_H_
