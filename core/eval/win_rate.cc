#include "core/eval/win_rate.h"

#include <algorithm>
#include <cmath>

namespace qlorad::eval {
namespace {

// The standard normal quantile by bisection on erfc (enough for a handful of calls).
double NormalQuantile(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

}  // namespace

std::optional<ProportionInterval> WilsonInterval(int64_t successes, int64_t trials, double confidence) {
  if (trials <= 0 || successes < 0 || successes > trials || confidence <= 0 || confidence >= 1) return std::nullopt;
  const double z = NormalQuantile(1 - (1 - confidence) / 2);
  const double n = static_cast<double>(trials);
  const double p = static_cast<double>(successes) / n;
  const double z2 = z * z;
  const double denominator = 1 + z2 / n;
  const double center = (p + z2 / (2 * n)) / denominator;
  const double half = z / denominator * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return ProportionInterval{p, std::max(0.0, center - half), std::min(1.0, center + half)};
}

WinRate ComputeWinRate(int64_t wins, int64_t losses, int64_t ties) {
  WinRate w;
  w.wins = wins;
  w.losses = losses;
  w.ties = ties;
  w.rate = WilsonInterval(wins, wins + losses);
  return w;
}

nlohmann::json WinRateToJson(const WinRate& w) {
  auto value = [&](double ProportionInterval::*field) {
    return w.rate ? nlohmann::json((*w.rate).*field) : nlohmann::json(nullptr);
  };
  return {{"wins", w.wins},
          {"losses", w.losses},
          {"ties", w.ties},
          {"rate", value(&ProportionInterval::point)},
          {"lower", value(&ProportionInterval::lower)},
          {"upper", value(&ProportionInterval::upper)},
          {"confidence", 0.95},
          {"method", "wilson"},
          {"ties_counted", "excluded from the rate (reported separately)"}};
}

}  // namespace qlorad::eval
