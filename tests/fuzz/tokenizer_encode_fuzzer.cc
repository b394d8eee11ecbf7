// Fuzzes encode/decode of arbitrary bytes with real tokenizers: Llama-3's byte-level
// BPE and Mistral's SentencePiece-style BPE (tokenizer.json from the npm fixtures) and
// a SentencePiece .model ($QLORAD_FUZZ_FIXTURES/sp_bpe.model, made by make_seeds.py).
// Invariants: ids are in range; decode is valid UTF-8; for Llama-3 (no normalizer),
// valid UTF-8 without special-token text decodes back to exactly the input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using qlorad::tokenizer::Tokenizer;

std::unique_ptr<Tokenizer> LoadOrDie(const std::string& path) {
  auto t = Tokenizer::Load(path);
  if (!t.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", path.c_str(), t.status().ToString().c_str());
    std::abort();
  }
  return *std::move(t);
}

struct Tokenizers {
  std::unique_ptr<Tokenizer> llama3, mistral, sentencepiece;
};

const Tokenizers& Get() {
  static const Tokenizers* t = [] {
    const std::string npm = std::string(QLORAD_SOURCE_DIR) + "/tests/fixtures/npm/node_modules/@lenml";
    auto* out = new Tokenizers;
    out->llama3 = LoadOrDie(npm + "/tokenizer-llama3/models/tokenizer.json");
    out->mistral = LoadOrDie(npm + "/tokenizer-llama2/models/tokenizer.json");
    if (!qlorad::fuzz::FixtureDir().empty()) out->sentencepiece = LoadOrDie(qlorad::fuzz::FixtureDir() + "/sp_bpe.model");
    return out;
  }();
  return *t;
}

void Check(const Tokenizer& tokenizer, std::string_view text, bool special, bool expect_round_trip) {
  auto ids = tokenizer.Encode(text, special);
  if (!ids.ok()) {
    if (qlorad::tokenizer::IsValidUtf8(text)) std::abort();  // only invalid UTF-8 may be refused
    return;
  }
  for (int32_t id : *ids) {
    if (id < 0 || id >= tokenizer.vocab_size()) std::abort();
  }
  const std::string decoded = tokenizer.Decode(*ids, /*skip_special_tokens=*/special);
  if (!qlorad::tokenizer::IsValidUtf8(decoded)) std::abort();
  if (expect_round_trip && decoded != text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizers& t = Get();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool plain = qlorad::tokenizer::IsValidUtf8(text) && text.find("<|") == std::string_view::npos;
  Check(*t.llama3, text, /*special=*/false, /*expect_round_trip=*/plain);
  Check(*t.llama3, text, /*special=*/true, false);
  Check(*t.mistral, text, true, false);
  if (t.sentencepiece) Check(*t.sentencepiece, text, true, false);
  // The input's bytes read as ids: unknown ones are skipped, the rest decode to UTF-8.
  std::vector<int32_t> ids(size / 4);
  for (size_t i = 0; i < ids.size(); ++i) std::memcpy(&ids[i], data + 4 * i, 4);
  if (!qlorad::tokenizer::IsValidUtf8(t.llama3->Decode(ids))) std::abort();
  if (!qlorad::tokenizer::IsValidUtf8(t.mistral->Decode(ids, true))) std::abort();
  return 0;
}
