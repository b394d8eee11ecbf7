#include "tests/testing/test_paths.h"

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace qlorad::testing {

std::string MakeTempDir(const std::string& prefix) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  return buffer.data();
}

}  // namespace qlorad::testing
