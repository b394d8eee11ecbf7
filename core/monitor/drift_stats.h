// Drift statistics: PSI, Jensen-Shannon distance, embedding-centroid distance,
// and the stable/moderate/significant bands (design.md section 4).
//
// Contract (documented here once; profiles, reports, alert rules and the Python
// reference tests/reference/drift_reference.py all follow it):
//
// * Histograms are bin COUNTS (non-negative, finite). Each side is normalised
//   to proportions by its own total before comparing. Both histograms must have
//   the same number of bins, at least one, and a positive total.
// * PSI = sum_i (cur_i - ref_i) * ln(cur_i / ref_i), natural log, over the
//   proportions, where every proportion below `epsilon` (default kPsiEpsilon =
//   1e-4, Evidently's value) is raised to `epsilon` ("empty bins floored").
//   The floored proportions are NOT renormalised. PSI >= 0; identical
//   histograms give exactly 0.
// * Jensen-Shannon distance = sqrt(JSD) with
//   JSD = 0.5*KL(p||m) + 0.5*KL(q||m), m = (p+q)/2, using BASE-2 logarithms, so
//   the distance lies in [0, 1] (1 = disjoint supports). Terms with p_i = 0
//   contribute 0 (no epsilon needed: m_i > 0 whenever p_i > 0). Note: scipy's
//   `jensenshannon` and Evidently default to base e (range [0, sqrt(ln 2)]);
//   distance_base2 = distance_e / sqrt(ln 2).
// * Bands (for PSI and for the JS distance alike): value < 0.1 stable,
//   0.1 <= value <= 0.25 moderate, value > 0.25 significant.
#ifndef QLORAD_CORE_MONITOR_DRIFT_STATS_H_
#define QLORAD_CORE_MONITOR_DRIFT_STATS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qlorad::monitor {

inline constexpr double kPsiEpsilon = 1e-4;
inline constexpr double kModerateThreshold = 0.1;
inline constexpr double kSignificantThreshold = 0.25;

enum class DriftBand { kStable = 0, kModerate = 1, kSignificant = 2 };

// Band of a PSI or JS-distance value (see the thresholds above). NaN -> kStable
// is never returned: callers must not pass NaN (statistics here never produce it).
DriftBand BandOf(double value);
// "stable", "moderate", "significant".
absl::string_view DriftBandName(DriftBand band);
// The more severe of two bands.
DriftBand MaxBand(DriftBand a, DriftBand b);

// Population stability index of `current` against `reference` (bin counts).
// INVALID_ARGUMENT naming the problem on mismatched sizes, empty input, a
// negative or non-finite count, a zero total, or epsilon outside (0, 1).
absl::StatusOr<double> PopulationStabilityIndex(const std::vector<double>& reference,
                                                const std::vector<double>& current,
                                                double epsilon = kPsiEpsilon);

// Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors.
// Same validation as PopulationStabilityIndex.
absl::StatusOr<double> JensenShannonDistance(const std::vector<double>& p,
                                             const std::vector<double>& q);

// Cosine distance 1 - a.b/(|a||b|), in [0, 2]. INVALID_ARGUMENT on size
// mismatch, empty vectors, non-finite values or a zero-norm vector.
absl::StatusOr<double> CosineDistance(const std::vector<float>& a, const std::vector<float>& b);

// Assigns `value` to a bin given ascending interior cut points c_1 < ... < c_m:
// bin 0 = (-inf, c_1), bin j = [c_j, c_{j+1}), bin m = [c_m, +inf). With no cut
// points everything falls into bin 0. Returns the bin index in [0, m].
int BinIndex(const std::vector<double>& cut_points, double value);

}  // namespace qlorad::monitor

#endif  // QLORAD_CORE_MONITOR_DRIFT_STATS_H_
