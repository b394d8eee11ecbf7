#include "core/service/gguf_export.h"

namespace qlorad::service {

absl::StatusOr<std::vector<std::string>> ExportAdapterGguf(const GgufExportInput&) {
  // Wired to core/export's GGUF writer when that part lands.
  return absl::UnimplementedError("GGUF export is not wired yet");
}

}  // namespace qlorad::service
