// A GGUF (version 3) file writer, from the format as gguf-py and ggml define it:
//
//   header   u32 magic 0x46554747 ("GGUF"), u32 version 3, u64 tensor_count, u64 kv_count
//   kv       string key, u32 value type, value     (string = u64 length + UTF-8 bytes;
//            array = u32 element type, u64 count, elements)
//   infos    per tensor: string name, u32 n_dims, u64 dims[n_dims] innermost first
//            (the torch shape reversed), u32 ggml type, u64 offset relative to the data section
//   data     starts at the first multiple of general.alignment after the infos; every
//            tensor offset is a multiple of it too (zero padding after each tensor, the last included, as gguf-py writes).
// All little-endian. The writer streams: tensor bytes are asked for one tensor at a
// time while writing, and the file appears atomically (temp file, fsync, rename).
// Torch-free.
#ifndef QLORAD_CORE_EXPORT_GGUF_WRITER_H_
#define QLORAD_CORE_EXPORT_GGUF_WRITER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/export/gguf_types.h"

namespace qlorad::gguf {

enum class GgufValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // torch order (outermost first); written reversed
  GgmlType type = GgmlType::kF32;

  int64_t NumValues() const;
  uint64_t ByteSize() const { return GgmlBytes(type, NumValues()); }
};

// Returns the encoded bytes (exactly tensors()[index].ByteSize()) of one tensor.
using GgufTensorSource = std::function<absl::StatusOr<std::string>(size_t index)>;

class GgufWriter {
 public:
  static constexpr uint32_t kMagic = 0x46554747;
  static constexpr uint32_t kVersion = 3;
  static constexpr uint32_t kDefaultAlignment = 32;

  // Key-value metadata, written in the order first set; setting a key again
  // replaces its value in place.
  void SetUint32(const std::string& key, uint32_t value);
  void SetInt32(const std::string& key, int32_t value);
  void SetUint64(const std::string& key, uint64_t value);
  void SetFloat32(const std::string& key, float value);
  void SetBool(const std::string& key, bool value);
  void SetString(const std::string& key, const std::string& value);
  void SetStringArray(const std::string& key, const std::vector<std::string>& values);
  void SetInt32Array(const std::string& key, const std::vector<int32_t>& values);
  void SetFloat32Array(const std::string& key, const std::vector<float>& values);
  // general.alignment (a power of two); also written as that key.
  void SetAlignment(uint32_t alignment);
  bool HasKey(const std::string& key) const;

  // Declares a tensor. INVALID_ARGUMENT for a duplicate name, an empty shape, or a
  // row length that is not a whole number of blocks of `info.type`.
  absl::Status AddTensor(GgufTensorInfo info);
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  // Writes the file at `path`, asking `source` for each tensor's bytes in order.
  // A source error or a wrong byte count aborts the write and leaves no file.
  absl::Status Write(const std::string& path, const GgufTensorSource& source) const;

 private:
  void SetRaw(const std::string& key, GgufValueType type, std::string payload);
  std::string EncodeHeader() const;

  uint32_t alignment_ = kDefaultAlignment;
  std::vector<std::pair<std::string, std::string>> kv_;  // key -> (u32 type + value) bytes
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace qlorad::gguf

#endif  // QLORAD_CORE_EXPORT_GGUF_WRITER_H_
