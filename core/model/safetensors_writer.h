// Writes .safetensors files (single or sharded with an index), streaming one
// tensor at a time so a model larger than RAM can be written.
#ifndef QLORAD_CORE_MODEL_SAFETENSORS_WRITER_H_
#define QLORAD_CORE_MODEL_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/model/dtype.h"

namespace qlorad {

struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;

  uint64_t ByteSize() const;
};

// Fills `out` (exactly the tensor's ByteSize() bytes, little-endian row-major)
// with the bytes of specs[index].
using TensorFiller = std::function<absl::Status(size_t index, absl::Span<uint8_t> out)>;

// Writes one safetensors file at `path` atomically (temp file + fsync + rename).
// Tensor names must be unique. Header padded with spaces to a multiple of 8.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                              const std::map<std::string, std::string>& metadata, const TensorFiller& fill);

// Writes `specs` into `dir` as model.safetensors when they fit in one shard of
// `max_shard_bytes`, else as model-0000i-of-0000n.safetensors plus
// model.safetensors.index.json ({"metadata": {"total_size"}, "weight_map"}).
absl::Status WriteShardedSafetensors(const std::string& dir, const std::vector<TensorSpec>& specs,
                                     const std::map<std::string, std::string>& metadata, uint64_t max_shard_bytes,
                                     const TensorFiller& fill);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_SAFETENSORS_WRITER_H_
