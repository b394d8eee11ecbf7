// Where tests find the source tree, the built tools and the npm test data.
#ifndef QLORAD_TESTS_TESTING_TEST_PATHS_H_
#define QLORAD_TESTS_TESTING_TEST_PATHS_H_

#include <string>

namespace qlorad::testing {

// The repository root (compile-time).
inline std::string SourceDir() { return QLORAD_SOURCE_DIR; }
// The build tree's binary directory (compile-time).
inline std::string BinaryDir() { return QLORAD_BINARY_DIR; }
// tests/fixtures/npm/node_modules, filled by tests/fixtures/npm/install.sh.
inline std::string NpmDir() { return SourceDir() + "/tests/fixtures/npm/node_modules"; }
// A fresh, empty directory under the test's temp dir, removed by nobody: ctest's
// working tree is disposable.
std::string MakeTempDir(const std::string& prefix);

}  // namespace qlorad::testing

#endif  // QLORAD_TESTS_TESTING_TEST_PATHS_H_
