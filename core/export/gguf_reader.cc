#include "core/export/gguf_reader.h"

#include <cstring>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace qlorad::gguf {
namespace {

constexpr int kMaxDims = 4;  // GGML_MAX_DIMS

// Reads little-endian fields from `bytes`, failing (never reading past the end) with
// an error that names the source, the field and the byte offset.
class Cursor {
 public:
  Cursor(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  absl::Status Error(std::string_view what, std::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", std::string(what), " at byte ", at_, ": ", std::string(problem),
                                                   " (hint: the file is truncated or not GGUF v2/v3)"));
  }
  template <typename T>
  absl::StatusOr<T> Read(std::string_view what) {
    if (bytes_.size() - at_ < sizeof(T)) return Error(what, "past the end of the file");
    T value;
    std::memcpy(&value, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return value;
  }
  absl::StatusOr<std::string> ReadString(std::string_view what, uint64_t max_bytes) {
    QLORAD_ASSIGN_OR_RETURN(const uint64_t length, Read<uint64_t>(what));
    if (length > max_bytes) return Error(what, absl::StrCat("string length ", length, " exceeds the limit"));
    if (bytes_.size() - at_ < length) return Error(what, absl::StrCat("string of ", length, " bytes runs past the end"));
    std::string out(bytes_.substr(at_, length));
    at_ += length;
    return out;
  }
  uint64_t at() const { return at_; }
  uint64_t remaining() const { return bytes_.size() - at_; }

 private:
  std::string_view bytes_;
  const std::string& source_;
  uint64_t at_ = 0;
};

// Bytes of one scalar of `type`; 0 for string/array/unknown.
uint64_t ScalarBytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: case GgufValueType::kInt8: case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16: case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32: case GgufValueType::kInt32: case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64: case GgufValueType::kInt64: case GgufValueType::kFloat64: return 8;
    default: return 0;
  }
}

absl::StatusOr<GgufValue> ReadValue(Cursor& in, GgufValueType type, const std::string& key,
                                    const GgufReadLimits& limits, int depth) {
  GgufValue value;
  value.type = type;
  const std::string what = absl::StrCat("metadata '", key, "'");
  if (const uint64_t n = ScalarBytes(type); n > 0) {
    for (uint64_t i = 0; i < n; ++i) {
      QLORAD_ASSIGN_OR_RETURN(const uint8_t b, in.Read<uint8_t>(what));
      value.scalar |= static_cast<uint64_t>(b) << (8 * i);
    }
    return value;
  }
  if (type == GgufValueType::kString) {
    QLORAD_ASSIGN_OR_RETURN(value.text, in.ReadString(what, limits.max_string_bytes));
    return value;
  }
  if (type != GgufValueType::kArray) {
    return in.Error(what, absl::StrCat("unknown value type ", static_cast<uint32_t>(type)));
  }
  if (depth >= limits.max_array_depth) return in.Error(what, "arrays nested too deeply");
  QLORAD_ASSIGN_OR_RETURN(const uint32_t element, in.Read<uint32_t>(what));
  QLORAD_ASSIGN_OR_RETURN(const uint64_t count, in.Read<uint64_t>(what));
  value.element_type = static_cast<GgufValueType>(element);
  // Every element takes at least one byte (strings 8), so a count beyond the bytes left is a lie.
  if (count > limits.max_array_items || count > in.remaining()) {
    return in.Error(what, absl::StrCat("array of ", count, " items cannot fit in the ", in.remaining(), " bytes left"));
  }
  value.items.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    QLORAD_ASSIGN_OR_RETURN(GgufValue item, ReadValue(in, value.element_type, key, limits, depth + 1));
    value.items.push_back(std::move(item));
  }
  return value;
}

bool KnownTensorType(uint32_t type) {
  return type == static_cast<uint32_t>(GgmlType::kF32) || type == static_cast<uint32_t>(GgmlType::kF16) ||
         type == static_cast<uint32_t>(GgmlType::kQ4_0) || type == static_cast<uint32_t>(GgmlType::kQ8_0);
}

absl::StatusOr<GgufReadTensor> ReadTensorInfo(Cursor& in, const GgufReadLimits& limits) {
  GgufReadTensor t;
  QLORAD_ASSIGN_OR_RETURN(t.name, in.ReadString("tensor name", limits.max_string_bytes));
  const std::string what = absl::StrCat("tensor '", t.name, "'");
  QLORAD_ASSIGN_OR_RETURN(const uint32_t n_dims, in.Read<uint32_t>(what));
  if (n_dims == 0 || n_dims > kMaxDims) return in.Error(what, absl::StrCat(n_dims, " dimensions (1 to 4 allowed)"));
  t.shape.assign(n_dims, 0);
  uint64_t values = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    QLORAD_ASSIGN_OR_RETURN(const uint64_t dim, in.Read<uint64_t>(what));
    if (dim > (uint64_t{1} << 40) || (dim != 0 && values > (uint64_t{1} << 50) / dim)) {
      return in.Error(what, absl::StrCat("dimension ", dim, " makes the tensor impossibly large"));
    }
    values *= dim;
    t.shape[n_dims - 1 - d] = static_cast<int64_t>(dim);  // the file stores innermost first
  }
  QLORAD_ASSIGN_OR_RETURN(const uint32_t type, in.Read<uint32_t>(what));
  if (!KnownTensorType(type)) {
    return absl::UnimplementedError(absl::StrCat(what, ": ggml type ", type,
                                                 " is not one qlorad reads (f32, f16, q4_0, q8_0)"));
  }
  t.type = static_cast<GgmlType>(type);
  if (t.shape.back() % GgmlBlockValues(t.type) != 0) {
    return in.Error(what, absl::StrCat("row length ", t.shape.back(), " is not a whole number of ",
                                       GgmlTypeName(t.type), " blocks"));
  }
  t.size = GgmlBytes(t.type, static_cast<int64_t>(values));
  QLORAD_ASSIGN_OR_RETURN(t.offset, in.Read<uint64_t>(what));
  return t;
}

}  // namespace

float GgufValue::AsFloat32() const {
  const uint32_t bits = static_cast<uint32_t>(scalar);
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  for (const auto& [k, v] : metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

absl::StatusOr<GgufFile> ParseGguf(std::string_view bytes, const std::string& source, const GgufReadLimits& limits) {
  Cursor in(bytes, source);
  GgufFile file;
  QLORAD_ASSIGN_OR_RETURN(const uint32_t magic, in.Read<uint32_t>("magic"));
  if (magic != GgufWriter::kMagic) return in.Error("magic", "not \"GGUF\"");
  QLORAD_ASSIGN_OR_RETURN(file.version, in.Read<uint32_t>("version"));
  if (file.version != 2 && file.version != 3) {
    return in.Error("version", absl::StrCat("version ", file.version, " (2 or 3 expected)"));
  }
  QLORAD_ASSIGN_OR_RETURN(const uint64_t n_tensors, in.Read<uint64_t>("tensor_count"));
  QLORAD_ASSIGN_OR_RETURN(const uint64_t n_kv, in.Read<uint64_t>("kv_count"));
  // Each kv takes >= 13 bytes and each tensor info >= 28: counts beyond that are lies.
  if (n_kv > in.remaining() / 13 || n_tensors > in.remaining() / 28) {
    return in.Error("header", absl::StrCat(n_kv, " keys and ", n_tensors, " tensors cannot fit in the file"));
  }
  std::set<std::string, std::less<>> keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    QLORAD_ASSIGN_OR_RETURN(std::string key, in.ReadString("metadata key", limits.max_string_bytes));
    const std::string what = absl::StrCat("metadata '", key, "'");
    if (!keys.insert(key).second) return in.Error(what, "duplicate key");
    QLORAD_ASSIGN_OR_RETURN(const uint32_t type, in.Read<uint32_t>(what));
    QLORAD_ASSIGN_OR_RETURN(GgufValue value, ReadValue(in, static_cast<GgufValueType>(type), key, limits, 0));
    file.metadata.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* a = file.Find("general.alignment")) {
    if (a->type != GgufValueType::kUint32 || a->scalar == 0 || (a->scalar & (a->scalar - 1)) != 0) {
      return in.Error("metadata 'general.alignment'", "must be a u32 power of two");
    }
    file.alignment = static_cast<uint32_t>(a->scalar);
  }
  std::set<std::string, std::less<>> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    QLORAD_ASSIGN_OR_RETURN(GgufReadTensor t, ReadTensorInfo(in, limits));
    if (!names.insert(t.name).second) return in.Error(absl::StrCat("tensor '", t.name, "'"), "duplicate name");
    file.tensors.push_back(std::move(t));
  }
  file.data_offset = GgufAlignUp(in.at(), file.alignment);
  if (file.data_offset > bytes.size() && !file.tensors.empty()) {
    return in.Error("data section", "starts past the end of the file");
  }
  const uint64_t data_size = bytes.size() >= file.data_offset ? bytes.size() - file.data_offset : 0;
  for (const GgufReadTensor& t : file.tensors) {
    const std::string what = absl::StrCat("tensor '", t.name, "'");
    if (t.offset % file.alignment != 0) return in.Error(what, absl::StrCat("offset ", t.offset, " is not aligned"));
    if (t.offset > data_size || t.size > data_size - t.offset) {
      return in.Error(what, absl::StrCat("bytes [", t.offset, ", +", t.size, ") lie outside the ", data_size,
                                         "-byte data section"));
    }
  }
  return file;
}

std::string_view GgufTensorBytes(std::string_view bytes, const GgufFile& file, const GgufReadTensor& tensor) {
  return bytes.substr(file.data_offset + tensor.offset, tensor.size);
}

}  // namespace qlorad::gguf
