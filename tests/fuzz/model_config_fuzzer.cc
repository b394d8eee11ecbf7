// Fuzzes the HF config.json parser (all supported architectures and their fields).
// An accepted config must survive its own round trip: ModelConfigToJson then parse
// gives the same JSON again.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = qlorad::ParseModelConfig(text, "fuzz/config.json");
  if (!config.ok()) return 0;
  const std::string written = qlorad::ModelConfigToJson(*config);
  auto reparsed = qlorad::ParseModelConfig(written, "fuzz/rewritten.json");
  if (!reparsed.ok() || qlorad::ModelConfigToJson(*reparsed) != written) std::abort();
  return 0;
}
