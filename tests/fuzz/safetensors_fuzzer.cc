// Fuzzes the safetensors reader: header JSON, dtypes, shapes and data offsets. Every
// accepted file must have tensors that lie inside the mapping and byte sizes that
// agree with dtype x shape; every rejected one must come back as a status.
#include <cstdint>
#include <cstdlib>

#include "core/model/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qlorad::fuzz::MemFile file(std::string_view(reinterpret_cast<const char*>(data), size));
  auto opened = qlorad::SafetensorsFile::Open(file.path());
  if (!opened.ok()) return 0;
  uint64_t checksum = 0;
  for (const qlorad::TensorInfo& t : (*opened)->tensors()) {
    absl::Span<const uint8_t> bytes = (*opened)->Data(t);
    if (bytes.size() != t.ByteSize()) std::abort();
    if (t.NumElements() * static_cast<int64_t>(qlorad::DTypeSize(t.dtype)) != static_cast<int64_t>(t.ByteSize())) {
      std::abort();
    }
    for (uint8_t b : bytes) checksum += b;  // touches every byte: ASan checks the bounds
    if ((*opened)->Find(t.name) == nullptr) std::abort();
  }
  qlorad::fuzz::KeepAlive(checksum);
  return 0;
}
