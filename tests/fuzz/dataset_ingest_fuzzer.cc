// Fuzzes dataset ingestion end to end: the JSONL (every format) and CSV readers,
// label consistency, PII anonymisation, validation, the hold-out split and the
// store's staging/rename, into a real DatasetStore under a scratch directory.
// The first input byte picks the options (CSV or JSONL, format, disagreement policy,
// a label set, a target regex); the rest is the file.
// Invariants: a refused ingest leaves nothing under the store root (the store's
// contract); an accepted one reads back through OpenTrain (checksum verified) with as
// many train examples as the manifest says.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/data/dataset_store.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace fs = std::filesystem;
using namespace qlorad::data;

IngestOptions OptionsFrom(uint8_t selector, const std::string& source_path) {
  IngestOptions options;
  options.source_path = source_path;
  options.dataset_id = "fuzz";
  options.allow_small_dataset = true;
  options.reader.csv = (selector & 1) != 0;
  static constexpr DatasetFormat kFormats[] = {DatasetFormat::kAuto, DatasetFormat::kClassification,
                                               DatasetFormat::kChat, DatasetFormat::kPromptCompletion};
  options.reader.format = kFormats[(selector >> 1) & 3];
  options.reader.max_errors = 1 + ((selector >> 3) & 3);
  options.disagreement_policy = (selector & 32) ? DisagreementPolicy::kDrop : DisagreementPolicy::kRefuse;
  if (selector & 64) options.validation.label_set = {"positive", "negative"};
  if (selector & 128) options.validation.target_regex = "[a-z]+( [a-z]+)*";
  return options;
}

bool Empty(const std::string& dir) { return fs::is_empty(dir); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const std::string root = qlorad::fuzz::ScratchDir() + "/datasets";
  static std::unique_ptr<DatasetStore> store = [] {
    auto s = DatasetStore::Open(root);
    if (!s.ok()) std::abort();
    return *std::move(s);
  }();
  qlorad::fuzz::MemFile source(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  const IngestOptions options = OptionsFrom(data[0], source.path());
  auto result = store->Ingest(options);
  if (!result.ok()) {
    if (!Empty(root)) std::abort();  // "On error nothing is left under root"
    return 0;
  }
  auto train = store->OpenTrain("fuzz");
  if (!train.ok()) std::abort();
  uint64_t examples = 0;
  Example example;
  for (;;) {
    auto got = (*train)->Next(&example);
    if (!got.ok()) std::abort();
    if (!*got) break;
    ++examples;
  }
  if (examples != result->train_examples) std::abort();
  fs::remove_all(root + "/fuzz");
  return 0;
}
