// A strict GGUF (versions 2 and 3) parser for files qlorad writes or is handed: the
// layout described in gguf_writer.h. Every count, length, dimension and offset is
// checked against the bytes actually present before it is used, so any input yields
// either a GgufFile or an error, never an out-of-bounds read or an unbounded allocation.
//
// Errors: INVALID_ARGUMENT "<source>: <what> at byte <offset>: <problem> (hint: ...)"
// for malformed or truncated input; UNIMPLEMENTED for a tensor type qlorad does not
// know (only f32, f16, q4_0 and q8_0 are sized). Torch-free.
#ifndef QLORAD_CORE_EXPORT_GGUF_READER_H_
#define QLORAD_CORE_EXPORT_GGUF_READER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/export/gguf_types.h"
#include "core/export/gguf_writer.h"

namespace qlorad::gguf {

// One metadata value. Scalars and strings fill `scalar`/`text`; arrays fill `items`
// (one GgufValue per element; nested arrays are allowed, as in the format).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  uint64_t scalar = 0;  // the raw little-endian bits of any numeric/bool scalar
  std::string text;     // kString
  GgufValueType element_type = GgufValueType::kUint8;  // kArray
  std::vector<GgufValue> items;                        // kArray

  float AsFloat32() const;  // kFloat32 bits reinterpreted
};

struct GgufReadTensor {
  std::string name;
  std::vector<int64_t> shape;  // torch order (outermost first)
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // relative to the data section
  uint64_t size = 0;    // bytes
};

struct GgufFile {
  uint32_t version = 0;
  uint32_t alignment = GgufWriter::kDefaultAlignment;
  std::vector<std::pair<std::string, GgufValue>> metadata;  // in file order
  std::vector<GgufReadTensor> tensors;                      // in file order
  uint64_t data_offset = 0;                                 // absolute start of the data section

  const GgufValue* Find(std::string_view key) const;
};

// Limits that keep a hostile header from allocating without bound.
struct GgufReadLimits {
  uint64_t max_string_bytes = 64u << 20;
  uint64_t max_array_items = 16u << 20;
  int max_array_depth = 4;
};

// Parses `bytes` (a whole file). `source` names it in errors.
absl::StatusOr<GgufFile> ParseGguf(std::string_view bytes, const std::string& source,
                                   const GgufReadLimits& limits = {});

// The bytes of `tensor` inside `bytes` (the same buffer ParseGguf accepted).
std::string_view GgufTensorBytes(std::string_view bytes, const GgufFile& file, const GgufReadTensor& tensor);

}  // namespace qlorad::gguf

#endif  // QLORAD_CORE_EXPORT_GGUF_READER_H_
