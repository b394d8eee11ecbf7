#include "core/model/safetensors_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

std::string BuildHeader(const std::vector<TensorSpec>& specs, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorSpec& spec : specs) {
    uint64_t size = spec.ByteSize();
    header[spec.name] = {{"dtype", std::string(DTypeName(spec.dtype))},
                         {"shape", spec.shape},
                         {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

absl::Status WriteAll(std::FILE* file, const void* data, size_t size, const std::string& path) {
  if (size > 0 && std::fwrite(data, 1, size, file) != size) return ErrnoStatus(errno, "cannot write", path);
  return absl::OkStatus();
}

absl::Status WriteBody(std::FILE* file, const std::string& tmp, const std::vector<TensorSpec>& specs,
                       const std::map<std::string, std::string>& metadata, const TensorFiller& fill) {
  std::string header = BuildHeader(specs, metadata);
  uint64_t header_size = header.size();
  QLORAD_RETURN_IF_ERROR(WriteAll(file, &header_size, 8, tmp));
  QLORAD_RETURN_IF_ERROR(WriteAll(file, header.data(), header.size(), tmp));
  std::vector<uint8_t> buffer;
  for (size_t i = 0; i < specs.size(); ++i) {
    buffer.assign(specs[i].ByteSize(), 0);
    QLORAD_RETURN_IF_ERROR(fill(i, absl::MakeSpan(buffer)));
    QLORAD_RETURN_IF_ERROR(WriteAll(file, buffer.data(), buffer.size(), tmp));
  }
  if (std::fflush(file) != 0 || ::fsync(::fileno(file)) != 0) return ErrnoStatus(errno, "cannot flush", tmp);
  return absl::OkStatus();
}

}  // namespace

uint64_t TensorSpec::ByteSize() const {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                              const std::map<std::string, std::string>& metadata, const TensorFiller& fill) {
  std::set<std::string> names;
  for (const TensorSpec& spec : specs) {
    if (!names.insert(spec.name).second)
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", spec.name, "' for ", path));
    for (int64_t d : spec.shape)
      if (d < 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", spec.name, "' has a negative dimension"));
  }
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) return ErrnoStatus(errno, "cannot create", tmp);
  absl::Status status = WriteBody(file, tmp, specs, metadata, fill);
  if (std::fclose(file) != 0 && status.ok()) status = ErrnoStatus(errno, "cannot close", tmp);
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) status = ErrnoStatus(errno, "cannot rename into", path);
  if (!status.ok()) {
    std::remove(tmp.c_str());
    return status;
  }
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  return SyncDirectory(dir.empty() ? "/" : dir);
}

absl::Status WriteShardedSafetensors(const std::string& dir, const std::vector<TensorSpec>& specs,
                                     const std::map<std::string, std::string>& metadata, uint64_t max_shard_bytes,
                                     const TensorFiller& fill) {
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0, total = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    uint64_t size = specs[i].ByteSize();
    if (!shards.back().empty() && shard_bytes + size > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += size;
    total += size;
  }
  if (shards.size() == 1) return WriteSafetensors(dir + "/model.safetensors", specs, metadata, fill);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    std::string name = absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, shards.size());
    std::vector<TensorSpec> shard_specs;
    for (size_t i : shards[s]) {
      shard_specs.push_back(specs[i]);
      weight_map[specs[i].name] = name;
    }
    const std::vector<size_t>& ids = shards[s];
    QLORAD_RETURN_IF_ERROR(WriteSafetensors(dir + "/" + name, shard_specs, metadata,
                                            [&](size_t local, absl::Span<uint8_t> out) { return fill(ids[local], out); }));
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  return WriteFileAtomically(dir + "/model.safetensors.index.json", index.dump(2));
}

}  // namespace qlorad
