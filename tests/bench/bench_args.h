// Helpers shared by the bench binaries: `--name value` lookup and the median of runs.
#ifndef QLORAD_TESTS_BENCH_BENCH_ARGS_H_
#define QLORAD_TESTS_BENCH_BENCH_ARGS_H_

#include <algorithm>
#include <string>
#include <vector>

namespace qlorad::bench {

// The value after `--name`, or `fallback` when the flag is absent.
inline std::string Arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

// The median of v (the mean of the two middle values for an even count); 0 when empty.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t mid = v.size() / 2;
  return v.size() % 2 == 1 ? v[mid] : 0.5 * (v[mid - 1] + v[mid]);
}

}  // namespace qlorad::bench

#endif  // QLORAD_TESTS_BENCH_BENCH_ARGS_H_
