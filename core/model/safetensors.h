// Read-only access to .safetensors files: the header is validated strictly on
// open and tensor bytes are served zero-copy from a private memory mapping.
//
// Format: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data; offsets are relative to the data start and must tile it exactly.
#ifndef QLORAD_CORE_MODEL_SAFETENSORS_H_
#define QLORAD_CORE_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/model/dtype.h"

namespace qlorad {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data section
  uint64_t end = 0;

  int64_t NumElements() const;
  uint64_t ByteSize() const { return end - begin; }
  std::string ShapeString() const;  // "[4096, 4096]"
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. Errors name the file and, where it applies, the
  // tensor: DATA_LOSS for a truncated or inconsistent file, INVALID_ARGUMENT for
  // an unknown dtype or a malformed header, NOT_FOUND if the file is missing.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensors in data order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr if absent.
  const TensorInfo* Find(std::string_view name) const;
  // The tensor's bytes inside the mapping; valid while this object lives.
  // The mapping is private copy-on-write: writes never reach the file. Callers must
  // not write through it at all (ReleasePages would silently undo such writes).
  absl::Span<const uint8_t> Data(const TensorInfo& info) const;
  // Advises the kernel to drop the resident pages of the tensor (after it was copied
  // elsewhere) and of the 2 MB-aligned region around it, so streaming a checkpoint never
  // holds it all in RAM. The whole region goes because the kernel maps large page-cache
  // folios (up to 2 MB; ext4/xfs on Linux 6.x) whole on a fault: touching one tensor maps
  // the tail of its released neighbour again. Views of dropped pages stay valid; their
  // bytes fault back in from the page cache when read.
  void ReleasePages(const TensorInfo& info) const;

 private:
  SafetensorsFile() = default;
  absl::Status ParseHeader(std::string_view header, uint64_t data_size);

  std::string path_;
  uint8_t* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  const uint8_t* data_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_SAFETENSORS_H_
