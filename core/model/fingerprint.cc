#include "core/model/fingerprint.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/sha256.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

// The cache key: each weight file's path, size and mtime.
nlohmann::json FileStamps(const Checkpoint& checkpoint) {
  nlohmann::json stamps = nlohmann::json::array();
  for (const auto& file : checkpoint.files()) {
    struct stat st {};
    ::stat(file->path().c_str(), &st);
    stamps.push_back({{"file", file->path()},
                      {"size", static_cast<int64_t>(st.st_size)},
                      {"mtime_ns", static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec}});
  }
  return stamps;
}

std::string Compute(const ModelConfig& config, const Checkpoint& checkpoint) {
  Sha256 hasher;
  hasher.Update(ModelConfigToJson(config));
  for (const std::string& name : checkpoint.TensorNames()) {  // sorted
    Checkpoint::Entry entry = checkpoint.Get(name).value();
    hasher.Update(absl::StrCat(name, "\n", DTypeName(entry.info->dtype), "\n", entry.info->ShapeString(), "\n"));
    auto bytes = entry.file->Data(*entry.info);
    hasher.Update(bytes.data(), bytes.size());
    entry.file->ReleasePages(*entry.info);
  }
  return "sha256:" + hasher.HexDigest();
}

}  // namespace

absl::StatusOr<std::string> ModelFingerprint(const std::string& model_dir, const ModelConfig& config,
                                             const Checkpoint& checkpoint) {
  nlohmann::json stamps = FileStamps(checkpoint);
  std::string cache_path = model_dir.empty() ? "" : model_dir + "/" + kFingerprintCacheFile;
  if (!cache_path.empty()) {
    if (auto text = ReadFileToString(cache_path); text.ok()) {
      nlohmann::json cached = nlohmann::json::parse(*text, nullptr, false);
      if (cached.is_object() && cached.value("files", nlohmann::json()) == stamps &&
          cached.value("config", std::string()) == ModelConfigToJson(config) && cached.contains("fingerprint"))
        return cached["fingerprint"].get<std::string>();
    }
  }
  std::string fingerprint = Compute(config, checkpoint);
  if (!cache_path.empty()) {
    nlohmann::json cache = {{"fingerprint", fingerprint}, {"files", stamps}, {"config", ModelConfigToJson(config)}};
    (void)WriteFileAtomically(cache_path, cache.dump(2));  // best effort: a read-only model dir is fine
  }
  return fingerprint;
}

}  // namespace qlorad
