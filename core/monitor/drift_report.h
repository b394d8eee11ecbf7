// DriftReport: a window of live prompts compared against a reference profile.
//
// The window is profiled exactly like the reference (DriftProfile's token
// buckets, stored length cut points, known-token set) and compared:
//   psi_length           PSI of the prompt-length histograms (drift_stats.h rule)
//   js_tokens            Jensen-Shannon distance (base 2) of the top-k+"other"
//                        token distributions
//   rare_token_rate      fraction of window tokens not known to the reference;
//                        delta = window rate - reference (Good-Turing) rate
//   embedding_distance   cosine distance between the window's and the
//                        reference's mean embeddings divided by the reference
//                        spread (mean per-prompt cosine distance to its mean;
//                        floored at kMinEmbeddingSpread). 1.0 = the centroid moved
//                        as far as a typical training prompt lies from it.
//                        Only when both sides have embeddings.
//   band                 the more severe of BandOf(psi_length) and
//                        BandOf(js_tokens).
#ifndef QLORAD_CORE_MONITOR_DRIFT_REPORT_H_
#define QLORAD_CORE_MONITOR_DRIFT_REPORT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/monitor/drift_profile.h"
#include "core/monitor/drift_stats.h"

namespace qlorad::monitor {

inline constexpr double kMinEmbeddingSpread = 1e-6;

struct DriftReport {
  int64_t window_size = 0;    // prompts in the window
  int64_t window_tokens = 0;  // tokens in the window
  double psi_length = 0;
  double js_tokens = 0;
  double rare_token_rate = 0;
  double reference_rare_token_rate = 0;
  double rare_token_rate_delta = 0;
  bool has_embedding_distance = false;
  double embedding_distance = 0;
  DriftBand band = DriftBand::kStable;

  // {"window_size":..,"psi_length":..,...,"band":"moderate"}; embedding_distance
  // is null when absent.
  std::string ToJson() const;
};

// FAILED_PRECONDITION when the window has no prompts or no tokens;
// INVALID_ARGUMENT on a negative token id or a bad embedding (dimension
// differing from the reference's, non-finite values).
absl::StatusOr<DriftReport> CompareToProfile(const DriftProfile& reference,
                                             const std::vector<const PromptSample*>& window);
absl::StatusOr<DriftReport> CompareToProfile(const DriftProfile& reference,
                                             const std::vector<PromptSample>& window);

}  // namespace qlorad::monitor

#endif  // QLORAD_CORE_MONITOR_DRIFT_REPORT_H_
