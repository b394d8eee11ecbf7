#include "core/export/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace qlorad::gguf {
namespace {

template <typename T>
void Put(std::string& out, T value) {
  static_assert(std::is_integral_v<T> || std::is_floating_point_v<T>);
  unsigned char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  // qlorad only builds for little-endian hosts (x86-64, aarch64); the bytes are already in order.
  out.append(reinterpret_cast<const char*>(bytes), sizeof(T));
}

void PutString(std::string& out, const std::string& text) {
  Put<uint64_t>(out, text.size());
  out.append(text);
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

int64_t GgufTensorInfo::NumValues() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void GgufWriter::SetRaw(const std::string& key, GgufValueType type, std::string payload) {
  std::string value;
  Put<uint32_t>(value, static_cast<uint32_t>(type));
  value += payload;
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::SetUint32(const std::string& key, uint32_t value) {
  std::string p;
  Put(p, value);
  SetRaw(key, GgufValueType::kUint32, p);
}
void GgufWriter::SetInt32(const std::string& key, int32_t value) {
  std::string p;
  Put(p, value);
  SetRaw(key, GgufValueType::kInt32, p);
}
void GgufWriter::SetUint64(const std::string& key, uint64_t value) {
  std::string p;
  Put(p, value);
  SetRaw(key, GgufValueType::kUint64, p);
}
void GgufWriter::SetFloat32(const std::string& key, float value) {
  std::string p;
  Put(p, value);
  SetRaw(key, GgufValueType::kFloat32, p);
}
void GgufWriter::SetBool(const std::string& key, bool value) {
  std::string p;
  Put<uint8_t>(p, value ? 1 : 0);
  SetRaw(key, GgufValueType::kBool, p);
}
void GgufWriter::SetString(const std::string& key, const std::string& value) {
  std::string p;
  PutString(p, value);
  SetRaw(key, GgufValueType::kString, p);
}
void GgufWriter::SetStringArray(const std::string& key, const std::vector<std::string>& values) {
  std::string p;
  Put<uint32_t>(p, static_cast<uint32_t>(GgufValueType::kString));
  Put<uint64_t>(p, values.size());
  for (const std::string& v : values) PutString(p, v);
  SetRaw(key, GgufValueType::kArray, std::move(p));
}
void GgufWriter::SetInt32Array(const std::string& key, const std::vector<int32_t>& values) {
  std::string p;
  Put<uint32_t>(p, static_cast<uint32_t>(GgufValueType::kInt32));
  Put<uint64_t>(p, values.size());
  for (int32_t v : values) Put(p, v);
  SetRaw(key, GgufValueType::kArray, std::move(p));
}
void GgufWriter::SetFloat32Array(const std::string& key, const std::vector<float>& values) {
  std::string p;
  Put<uint32_t>(p, static_cast<uint32_t>(GgufValueType::kFloat32));
  Put<uint64_t>(p, values.size());
  for (float v : values) Put(p, v);
  SetRaw(key, GgufValueType::kArray, std::move(p));
}

void GgufWriter::SetAlignment(uint32_t alignment) {
  alignment_ = alignment;
  SetUint32("general.alignment", alignment);
}

bool GgufWriter::HasKey(const std::string& key) const {
  for (const auto& kv : kv_)
    if (kv.first == key) return true;
  return false;
}

absl::Status GgufWriter::AddTensor(GgufTensorInfo info) {
  for (const GgufTensorInfo& t : tensors_)
    if (t.name == info.name) return absl::InvalidArgumentError(absl::StrCat("tensor '", info.name, "' added twice"));
  if (info.shape.empty() || info.shape.size() > 4)
    return absl::InvalidArgumentError(absl::StrCat("tensor '", info.name, "' must have 1 to 4 dimensions"));
  for (int64_t d : info.shape)
    if (d <= 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", info.name, "' has a non-positive dimension"));
  if (info.shape.back() % GgmlBlockValues(info.type) != 0)
    return absl::InvalidArgumentError(absl::StrCat("tensor '", info.name, "': row length ", info.shape.back(),
                                                   " is not a multiple of the ", GgmlTypeName(info.type), " block (",
                                                   GgmlBlockValues(info.type), ")"));
  tensors_.push_back(std::move(info));
  return absl::OkStatus();
}

std::string GgufWriter::EncodeHeader() const {
  std::string out;
  Put<uint32_t>(out, kMagic);
  Put<uint32_t>(out, kVersion);
  Put<uint64_t>(out, tensors_.size());
  const bool add_alignment = !HasKey("general.alignment");
  Put<uint64_t>(out, kv_.size() + (add_alignment ? 1 : 0));
  for (const auto& [key, value] : kv_) {
    PutString(out, key);
    out += value;
  }
  if (add_alignment) {
    PutString(out, "general.alignment");
    Put<uint32_t>(out, static_cast<uint32_t>(GgufValueType::kUint32));
    Put<uint32_t>(out, alignment_);
  }
  uint64_t offset = 0;
  for (const GgufTensorInfo& t : tensors_) {
    PutString(out, t.name);
    Put<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) Put<uint64_t>(out, static_cast<uint64_t>(*it));
    Put<uint32_t>(out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(out, offset);
    offset = GgufAlignUp(offset + t.ByteSize(), alignment_);
  }
  out.resize(GgufAlignUp(out.size(), alignment_), '\0');
  return out;
}

absl::Status GgufWriter::Write(const std::string& path, const GgufTensorSource& source) const {
  const std::string temp = absl::StrCat(path, ".tmp.", ::getpid());
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(temp.c_str(), "wb"));
  if (!file) return ErrnoStatus(errno, "cannot create", temp);
  auto fail = [&](absl::Status status) {
    file.reset();
    std::remove(temp.c_str());
    return status;
  };
  auto write = [&](const std::string& bytes) {
    return std::fwrite(bytes.data(), 1, bytes.size(), file.get()) == bytes.size();
  };
  if (!write(EncodeHeader())) return fail(ErrnoStatus(errno, "cannot write", temp));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    absl::StatusOr<std::string> bytes = source(i);
    if (!bytes.ok()) return fail(bytes.status());
    if (bytes->size() != tensors_[i].ByteSize())
      return fail(absl::InternalError(absl::StrCat("tensor '", tensors_[i].name, "': source gave ", bytes->size(),
                                                   " bytes, expected ", tensors_[i].ByteSize())));
    bytes->resize(GgufAlignUp(bytes->size(), alignment_), '\0');  // gguf-py pads after the last tensor too
    if (!write(*bytes)) return fail(ErrnoStatus(errno, "cannot write", temp));
  }
  if (std::fflush(file.get()) != 0 || ::fsync(::fileno(file.get())) != 0)
    return fail(ErrnoStatus(errno, "cannot flush", temp));
  file.reset();
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    absl::Status status = ErrnoStatus(errno, "cannot rename to", path);
    std::remove(temp.c_str());
    return status;
  }
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return SyncDirectory(parent.empty() ? "." : parent.string());
}

}  // namespace qlorad::gguf
