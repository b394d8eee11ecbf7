#include "core/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the reference implementation's limit

absl::Status Corrupt(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("safetensors file '", path, "': ", what));
}

absl::Status BadHeader(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors file '", path, "': ", what));
}

}  // namespace

int64_t TensorInfo::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::ShapeString() const { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open safetensors file", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "cannot stat", path);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Corrupt(path, absl::StrCat("truncated: ", size, " bytes, shorter than the 8-byte header length"));
  }
  void* mapping = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (mapping == MAP_FAILED) return ErrnoStatus(err, "cannot map", path);
  file->mapping_ = static_cast<uint8_t*>(mapping);
  file->mapping_size_ = size;

  uint64_t header_size = 0;
  std::memcpy(&header_size, file->mapping_, 8);  // little-endian host (x86-64, aarch64)
  if (header_size > kMaxHeaderBytes)
    return Corrupt(path, absl::StrCat("header length ", header_size, " exceeds the 100 MiB limit (not a safetensors file?)"));
  if (header_size > size - 8)
    return Corrupt(path, absl::StrCat("truncated: header length ", header_size, " but only ", size - 8, " bytes follow"));
  file->data_ = file->mapping_ + 8 + header_size;
  std::string_view header(reinterpret_cast<const char*>(file->mapping_ + 8), header_size);
  QLORAD_RETURN_IF_ERROR(file->ParseHeader(header, size - 8 - header_size));
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

absl::Status SafetensorsFile::ParseHeader(std::string_view header, uint64_t data_size) {
  nlohmann::json json = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return BadHeader(path_, "header is not a JSON object");
  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return BadHeader(path_, "__metadata__ must be an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) return BadHeader(path_, absl::StrCat("__metadata__ value of '", key, "' is not a string"));
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string& tensor_name = name;  // a lambda cannot capture a structured binding (C++17)
    auto fail = [&](absl::string_view what) { return BadHeader(path_, absl::StrCat("tensor '", tensor_name, "': ", what)); };
    if (!entry.is_object()) return fail("entry is not an object");
    TensorInfo info;
    info.name = name;
    auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) return fail("missing field 'dtype'");
    auto dtype = ParseDType(dtype_it->get<std::string>());
    if (!dtype)
      return fail(absl::StrCat("unknown dtype '", dtype_it->get<std::string>(), "' (supported: ", SupportedDTypeNames(), ")"));
    info.dtype = *dtype;
    auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) return fail("missing field 'shape'");
    for (const auto& dim : *shape_it) {
      if (!dim.is_number_unsigned()) return fail("shape must hold non-negative integers");
      info.shape.push_back(dim.get<int64_t>());
    }
    auto offsets_it = entry.find("data_offsets");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned())
      return fail("field 'data_offsets' must be [begin, end]");
    info.begin = (*offsets_it)[0].get<uint64_t>();
    info.end = (*offsets_it)[1].get<uint64_t>();
    if (info.begin > info.end) return fail("data_offsets begin > end");
    if (info.end > data_size)
      return Corrupt(path_, absl::StrCat("tensor '", name, "': data_offsets end ", info.end, " is past the data section (",
                                         data_size, " bytes; file truncated?)"));
    uint64_t expected = static_cast<uint64_t>(info.NumElements()) * DTypeSize(info.dtype);
    if (info.ByteSize() != expected)
      return Corrupt(path_, absl::StrCat("tensor '", name, "': ", info.ByteSize(), " bytes in data_offsets but dtype ",
                                         DTypeName(info.dtype), " and shape ", info.ShapeString(), " need ", expected));
    tensors_.push_back(std::move(info));
  }
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const TensorInfo& info : tensors_) {
    if (info.begin < cursor)
      return Corrupt(path_, absl::StrCat("tensor '", info.name, "' overlaps the previous tensor's bytes"));
    if (info.begin > cursor)
      return Corrupt(path_, absl::StrCat("gap of ", info.begin - cursor, " bytes before tensor '", info.name, "'"));
    cursor = info.end;
  }
  if (cursor != data_size)
    return Corrupt(path_, absl::StrCat("data section has ", data_size - cursor, " bytes not covered by any tensor"));
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  return absl::OkStatus();
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Span<const uint8_t> SafetensorsFile::Data(const TensorInfo& info) const {
  return absl::Span<const uint8_t>(data_ + info.begin, info.ByteSize());
}

void SafetensorsFile::ReleasePages(const TensorInfo& info) const {
  constexpr uintptr_t kFolioSpan = uintptr_t{2} << 20;  // the largest folio mapped whole
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t map_begin = reinterpret_cast<uintptr_t>(mapping_);  // page-aligned
  const uintptr_t map_end = (map_begin + mapping_size_ + page - 1) / page * page;
  const uintptr_t first = reinterpret_cast<uintptr_t>(data_ + info.begin);
  const uintptr_t last = reinterpret_cast<uintptr_t>(data_ + info.end);
  const uintptr_t begin = std::max(map_begin, first / kFolioSpan * kFolioSpan);
  const uintptr_t end = std::min(map_end, (last + kFolioSpan - 1) / kFolioSpan * kFolioSpan);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace qlorad
