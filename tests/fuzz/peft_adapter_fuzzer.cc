// Fuzzes a PEFT adapter directory: adapter_config.json (PEFT semantics, incl. the
// regex forms of target_modules / exclude_modules / rank_pattern) plus the tensor keys
// and shapes of adapter_model.safetensors. Input layout: the config JSON, then
// "\n--\n", then the safetensors bytes. For an accepted config every tensor key is
// parsed and its module run through the target/rank/alpha rules; an accepted rank is
// positive.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/adapter/lora_config.h"
#include "core/adapter/peft_config.h"
#include "core/model/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [config_json, weights] =
      qlorad::fuzz::SplitOnce(std::string_view(reinterpret_cast<const char*>(data), size), "\n--\n");
  const std::string& dir = qlorad::fuzz::ScratchDir();
  qlorad::fuzz::WriteFile(dir, "adapter_config.json", config_json);
  auto config = qlorad::ReadPeftConfig(dir);
  qlorad::fuzz::MemFile file(weights);
  auto tensors = qlorad::SafetensorsFile::Open(file.path());
  if (!tensors.ok()) return 0;
  for (const qlorad::TensorInfo& t : (*tensors)->tensors()) {
    auto key = qlorad::ParsePeftTensorKey(t.name);
    if (!key.ok() || !config.ok()) continue;
    if (qlorad::PeftTensorName(key->module, key->is_a).empty()) std::abort();
    if (config->Targets(key->module) && config->RankFor(key->module) <= 0) std::abort();
    (void)config->AlphaFor(key->module);
  }
  return 0;
}
