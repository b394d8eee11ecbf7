// Fuzzes the GGUF reader on raw bytes: header counts, strings, nested arrays, tensor
// infos and data offsets. Every accepted tensor's bytes must lie inside the input.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/export/gguf_reader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto file = qlorad::gguf::ParseGguf(bytes, "fuzz.gguf");
  if (!file.ok()) return 0;
  uint64_t sum = 0;
  for (const auto& t : file->tensors) {
    const std::string_view tensor = qlorad::gguf::GgufTensorBytes(bytes, *file, t);
    if (tensor.size() != t.size) std::abort();
    for (char c : tensor) sum += static_cast<uint8_t>(c);
  }
  qlorad::fuzz::KeepAlive(sum);
  return 0;
}
