#include "core/monitor/drift_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qlorad::monitor {
namespace {

// Validates a count vector and returns its total; `what` names it in errors.
absl::StatusOr<double> CheckedTotal(const std::vector<double>& counts, absl::string_view what) {
  if (counts.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " histogram has no bins"));
  }
  double total = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (!std::isfinite(counts[i]) || counts[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " histogram bin ", i, " has count ", counts[i],
          " (hint: counts must be finite and non-negative)"));
    }
    total += counts[i];
  }
  if (!(total > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " histogram is empty (total count 0; hint: no samples in the window?)"));
  }
  return total;
}

absl::Status CheckSameSize(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "histograms have different bin counts: reference ", a.size(), " vs current ", b.size(),
        " (hint: current windows must be binned with the reference profile's edges)"));
  }
  return absl::OkStatus();
}

}  // namespace

DriftBand BandOf(double value) {
  if (value > kSignificantThreshold) return DriftBand::kSignificant;
  if (value >= kModerateThreshold) return DriftBand::kModerate;
  return DriftBand::kStable;
}

absl::string_view DriftBandName(DriftBand band) {
  switch (band) {
    case DriftBand::kStable:
      return "stable";
    case DriftBand::kModerate:
      return "moderate";
    case DriftBand::kSignificant:
      return "significant";
  }
  return "unknown";
}

DriftBand MaxBand(DriftBand a, DriftBand b) {
  return static_cast<int>(a) >= static_cast<int>(b) ? a : b;
}

absl::StatusOr<double> PopulationStabilityIndex(const std::vector<double>& reference,
                                                const std::vector<double>& current,
                                                double epsilon) {
  if (!(epsilon > 0 && epsilon < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("PSI epsilon ", epsilon, " is not in (0, 1)"));
  }
  absl::Status same = CheckSameSize(reference, current);
  if (!same.ok()) return same;
  absl::StatusOr<double> ref_total = CheckedTotal(reference, "reference");
  if (!ref_total.ok()) return ref_total.status();
  absl::StatusOr<double> cur_total = CheckedTotal(current, "current");
  if (!cur_total.ok()) return cur_total.status();
  double psi = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const double r = std::max(reference[i] / *ref_total, epsilon);
    const double c = std::max(current[i] / *cur_total, epsilon);
    psi += (c - r) * std::log(c / r);
  }
  return psi;
}

absl::StatusOr<double> JensenShannonDistance(const std::vector<double>& p,
                                             const std::vector<double>& q) {
  absl::Status same = CheckSameSize(p, q);
  if (!same.ok()) return same;
  absl::StatusOr<double> p_total = CheckedTotal(p, "reference");
  if (!p_total.ok()) return p_total.status();
  absl::StatusOr<double> q_total = CheckedTotal(q, "current");
  if (!q_total.ok()) return q_total.status();
  double jsd = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double pi = p[i] / *p_total;
    const double qi = q[i] / *q_total;
    const double mi = 0.5 * (pi + qi);
    if (pi > 0) jsd += 0.5 * pi * std::log2(pi / mi);
    if (qi > 0) jsd += 0.5 * qi * std::log2(qi / mi);
  }
  // Rounding can leave a tiny negative or a value a hair above 1.
  jsd = std::min(std::max(jsd, 0.0), 1.0);
  return std::sqrt(jsd);
}

absl::StatusOr<double> CosineDistance(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.empty() || a.size() != b.size()) {
    return absl::InvalidArgumentError(absl::StrCat("cosine distance needs two non-empty vectors of ",
                                                   "equal size, got ", a.size(), " and ", b.size()));
  }
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
      return absl::InvalidArgumentError(absl::StrCat("non-finite embedding value at index ", i));
    }
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  if (na == 0 || nb == 0) {
    return absl::InvalidArgumentError("cosine distance of a zero-norm vector is undefined");
  }
  const double cos = std::min(1.0, std::max(-1.0, dot / (std::sqrt(na) * std::sqrt(nb))));
  return 1.0 - cos;
}

int BinIndex(const std::vector<double>& cut_points, double value) {
  // Number of cut points <= value.
  return static_cast<int>(std::upper_bound(cut_points.begin(), cut_points.end(), value) -
                          cut_points.begin());
}

}  // namespace qlorad::monitor
