// Command-line helpers shared by the bench binaries: `--name value` lookup.
#ifndef QLORAD_TESTS_BENCH_BENCH_ARGS_H_
#define QLORAD_TESTS_BENCH_BENCH_ARGS_H_

#include <string>

namespace qlorad::bench {

// The value after `--name`, or `fallback` when the flag is absent.
inline std::string Arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

}  // namespace qlorad::bench

#endif  // QLORAD_TESTS_BENCH_BENCH_ARGS_H_
