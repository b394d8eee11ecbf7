// Fuzzes the tokenizer.json loader: the input is a whole tokenizer.json. An accepted
// tokenizer must encode and decode a fixed mixed-script text and decode arbitrary ids
// (unknown ids are skipped) to valid UTF-8.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/tokenizer/hf_tokenizer.h"
#include "core/tokenizer/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  auto tokenizer = qlorad::tokenizer::HfTokenizer::Create(json, "fuzz/tokenizer.json", {});
  if (!tokenizer.ok()) return 0;
  const std::string sample = "Hello world! Zażółć gęślą jaźń \xe4\xbd\xa0\xe5\xa5\xbd \t\n 12345 <s></s>";
  auto ids = (*tokenizer)->Encode(sample, /*add_special_tokens=*/true);
  if (ids.ok()) {
    for (int32_t id : *ids) {
      if (id < 0 || id >= (*tokenizer)->vocab_size()) std::abort();
    }
    const std::string text = (*tokenizer)->Decode(*ids);
    if (!qlorad::tokenizer::IsValidUtf8(text)) std::abort();
  }
  const std::vector<int32_t> odd_ids = {-1, 0, 1, 2, 255, (*tokenizer)->vocab_size(), 1 << 30};
  if (!qlorad::tokenizer::IsValidUtf8((*tokenizer)->Decode(odd_ids, true))) std::abort();
  return 0;
}
