// The instruction sets this CPU can run (cpu_isa.h), lowest first, for tests that check
// every kernel variant with kernels::LimitIsaForTesting.
#ifndef QLORAD_TESTS_TESTING_CPU_ISAS_H_
#define QLORAD_TESTS_TESTING_CPU_ISAS_H_

#include <vector>

#include "kernels/cpu_isa.h"

namespace qlorad::testing {

inline std::vector<kernels::CpuIsa> IsasOfThisCpu() {
  std::vector<kernels::CpuIsa> isas;
  for (auto isa : {kernels::CpuIsa::kScalar, kernels::CpuIsa::kAvx2, kernels::CpuIsa::kAvx512})
    if (static_cast<int>(isa) <= static_cast<int>(kernels::DetectedIsa())) isas.push_back(isa);
  return isas;
}

}  // namespace qlorad::testing

#endif  // QLORAD_TESTS_TESTING_CPU_ISAS_H_
