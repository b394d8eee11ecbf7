// Small helpers shared by the core/data tests.
#ifndef QLORAD_TESTS_CORE_DATA_DATA_TEST_UTIL_H_
#define QLORAD_TESTS_CORE_DATA_DATA_TEST_UTIL_H_

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace qlorad::data::testing {

inline void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every entry (including hidden ones) directly under `dir`.
inline std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

// JSON lines of a file.
inline std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

// The UCI sentiment sentences of the npm `sentiment` package: {"text","class":0|1}, with the
// trailing record whose class is null dropped.
inline std::vector<std::pair<std::string, int>> LoadUciSentences(const std::string& npm_dir) {
  std::vector<std::pair<std::string, int>> out;
  for (const char* name : {"imdb", "yelp", "amazon"}) {
    nlohmann::json all = nlohmann::json::parse(ReadFile(npm_dir + "/sentiment/test/fixtures/" + name + ".json"));
    for (const auto& r : all) {
      if (r["class"].is_null()) continue;
      out.emplace_back(r["text"].get<std::string>(), r["class"].get<int>());
    }
  }
  return out;
}

}  // namespace qlorad::data::testing

#endif  // QLORAD_TESTS_CORE_DATA_DATA_TEST_UTIL_H_
