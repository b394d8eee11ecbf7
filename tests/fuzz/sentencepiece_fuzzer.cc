// Fuzzes SentencePiece .model loading (the protobuf ModelProto parsed by
// libsentencepiece behind qlorad's dlopen'd plugin). An accepted model must encode
// and decode a fixed text to in-range ids and valid UTF-8.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/tokenizer/sentencepiece_tokenizer.h"
#include "core/tokenizer/utf8.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qlorad::fuzz::MemFile file(std::string_view(reinterpret_cast<const char*>(data), size));
  auto tokenizer = qlorad::tokenizer::SentencePieceTokenizer::Create(file.path(), {});
  if (!tokenizer.ok()) return 0;
  auto ids = (*tokenizer)->Encode("Hello world! Zażółć gęślą jaźń 12345", true);
  if (!ids.ok()) return 0;
  for (int32_t id : *ids) {
    if (id < 0 || id >= (*tokenizer)->vocab_size()) std::abort();
  }
  if (!qlorad::tokenizer::IsValidUtf8((*tokenizer)->Decode(*ids))) std::abort();
  return 0;
}
