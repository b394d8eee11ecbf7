// The adapter's win rate in a human review: wins / (wins + losses) over the judgements
// that preferred one system, with the Wilson score interval (Wilson 1927), the interval
// statsmodels' proportion_confint(method="wilson") gives. Ties are NOT counted as half a
// win: they are left out of the rate and reported separately (a tie says neither output
// was better, so counting it either way would move the rate toward 1/2 by fiat).
#ifndef QLORAD_CORE_EVAL_WIN_RATE_H_
#define QLORAD_CORE_EVAL_WIN_RATE_H_

#include <cstdint>
#include <optional>

#include "nlohmann/json.hpp"

namespace qlorad::eval {

struct ProportionInterval {
  double point = 0, lower = 0, upper = 0;
};

// Wilson score interval of successes/trials at the two-sided `confidence` (z from the
// normal quantile; 0.95 -> 1.959963984540054). nullopt when trials == 0 or successes is
// outside [0, trials].
std::optional<ProportionInterval> WilsonInterval(int64_t successes, int64_t trials, double confidence = 0.95);

struct WinRate {
  int64_t wins = 0, losses = 0, ties = 0;
  std::optional<ProportionInterval> rate;  // nullopt when wins + losses == 0
};

WinRate ComputeWinRate(int64_t wins, int64_t losses, int64_t ties);
// {"wins", "losses", "ties", "rate", "lower", "upper", "confidence": 0.95, "method":
// "wilson", "ties_counted": "excluded ..."}; rate/lower/upper null when undefined.
nlohmann::json WinRateToJson(const WinRate& w);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_WIN_RATE_H_
