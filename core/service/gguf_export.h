// The one place the daemon's ExportAdapter (format "gguf") reaches the GGUF exporter
// (core/export). Kept behind this function so the RPC plumbing does not depend on the
// exporter's own interface.
#ifndef QLORAD_CORE_SERVICE_GGUF_EXPORT_H_
#define QLORAD_CORE_SERVICE_GGUF_EXPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qlorad::service {

struct GgufExportInput {
  std::string adapter_dir;     // the PEFT adapter directory (adapter_config.json, adapter_model.safetensors, training_run.json)
  std::string base_model_dir;  // the resident base model (HF directory)
  std::string type = "f32";    // f32 | f16 | q8_0 | q4_0
  bool merge = false;          // the base with the adapter merged in, instead of a GGUF LoRA adapter
  std::string out_dir;         // an existing empty scratch directory to write into
  std::string adapter_id;      // "name@version", recorded in a merged export's metadata
};

// Writes the GGUF export (and whatever goes beside it, e.g. an Ollama Modelfile) into
// input.out_dir and returns the names of the files written there, in streaming order.
absl::StatusOr<std::vector<std::string>> ExportAdapterGguf(const GgufExportInput& input);

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_GGUF_EXPORT_H_
