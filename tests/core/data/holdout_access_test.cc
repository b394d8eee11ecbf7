// Guards the hold-out capability: `qlorad::eval::EvaluationAccess` (the only friend of
// HoldoutKey) may be defined only by the evaluation module (core/eval/) and the data tests
// that stand in for it. Any other definition, e.g. in core/train, fails this test.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/testing/test_paths.h"

namespace {

namespace fs = std::filesystem;

TEST(HoldoutAccessPolicyTest, EvaluationAccessIsDefinedOnlyByEvaluationCode) {
  const fs::path root = qlorad::testing::SourceDir();
  const std::regex definition(R"(class\s+EvaluationAccess\s*(final\s*)?[{:])");
  std::vector<std::string> offenders;
  for (const char* top : {"core", "server", "client", "kernels", "tests"}) {
    if (!fs::exists(root / top)) continue;
    for (auto it = fs::recursive_directory_iterator(root / top); it != fs::recursive_directory_iterator(); ++it) {
      if (it->is_directory() && it->path().filename() == "node_modules") {
        it.disable_recursion_pending();
        continue;
      }
      const std::string ext = it->path().extension().string();
      if (ext != ".h" && ext != ".cc" && ext != ".cu" && ext != ".cpp") continue;
      const std::string rel = fs::relative(it->path(), root).string();
      if (rel.rfind("core/eval/", 0) == 0 || rel.rfind("tests/core/data/", 0) == 0 ||
          rel.rfind("tests/core/eval/", 0) == 0) {
        continue;
      }
      std::ifstream in(it->path());
      std::stringstream s;
      s << in.rdbuf();
      if (std::regex_search(s.str(), definition)) offenders.push_back(rel);
    }
  }
  EXPECT_TRUE(offenders.empty()) << "EvaluationAccess (the hold-out capability) defined outside evaluation code: "
                                 << offenders.front();
}

}  // namespace
