#include "core/data/dataset_store.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/util/file_util.h"
#include "core/util/path_name.h"
#include "core/util/sha256.h"
#include "core/util/status_macros.h"

namespace qlorad::data {
namespace fs = std::filesystem;

absl::Status ValidateDatasetId(const std::string& id) { return ValidatePathName("dataset_id", id); }

absl::StatusOr<std::string> DatasetStore::DatasetDir(const std::string& dataset_id) const {
  return PathInside(root_, "dataset_id", dataset_id);
}

std::string DatasetStore::HostTag() {
  static const std::string tag = [] {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
    return Sha256Hex(host).substr(0, 8);
  }();
  return tag;
}

absl::StatusOr<std::unique_ptr<DatasetStore>> DatasetStore::Open(const std::string& root) {
  if (root.empty()) return absl::InvalidArgumentError("dataset store root is empty");
  QLORAD_RETURN_IF_ERROR(EnsureDirectory(root));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(".staging-", 0) != 0) continue;
    // .staging-<id>-<pid>-<host>-<n>: remove only if it is this host's and <pid> is gone.
    std::vector<std::string> parts = absl::StrSplit(name, '-');
    int pid = 0;
    if (parts.size() < 5 || parts[parts.size() - 2] != HostTag() || !absl::SimpleAtoi(parts[parts.size() - 3], &pid) ||
        pid <= 0)
      continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) fs::remove_all(entry.path(), ec);
  }
  return std::unique_ptr<DatasetStore>(new DatasetStore(root));
}

absl::StatusOr<nlohmann::json> DatasetStore::GetManifest(const std::string& dataset_id) const {
  QLORAD_ASSIGN_OR_RETURN(const std::string dir, DatasetDir(dataset_id));
  std::string path = dir + "/manifest.json";
  auto text = ReadFileToString(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(absl::StrCat("dataset '", dataset_id, "' not found under ", root_));
    }
    return text.status();
  }
  nlohmann::json manifest = nlohmann::json::parse(*text, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": manifest is not valid JSON"));
  }
  return manifest;
}

absl::StatusOr<std::vector<std::string>> DatasetStore::List() const {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_directory() && ValidateDatasetId(name).ok() && fs::exists(entry.path() / "manifest.json")) {
      ids.push_back(name);
    }
  }
  if (ec) return ErrnoStatus(ec.value(), "cannot list dataset store", root_);
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::StatusOr<std::unique_ptr<SplitReader>> DatasetStore::OpenTrain(const std::string& dataset_id) const {
  return OpenSplit(dataset_id, "train");
}

absl::StatusOr<std::unique_ptr<SplitReader>> DatasetStore::OpenSplit(const std::string& dataset_id,
                                                                     const std::string& split) const {
  QLORAD_ASSIGN_OR_RETURN(nlohmann::json manifest, GetManifest(dataset_id));
  const nlohmann::json* file = nullptr;
  if (manifest.contains("files") && manifest["files"].contains(split)) file = &manifest["files"][split];
  if (file == nullptr || !(*file)["name"].is_string() || !(*file)["sha256"].is_string()) {
    return absl::DataLossError(absl::StrCat("dataset '", dataset_id, "': manifest lacks files.", split));
  }
  QLORAD_ASSIGN_OR_RETURN(const std::string dir, DatasetDir(dataset_id));
  QLORAD_ASSIGN_OR_RETURN(const std::string path,
                          PathInside(dir, absl::StrCat("manifest files.", split, ".name"), (*file)["name"].get<std::string>()));
  QLORAD_ASSIGN_OR_RETURN(std::string digest, Sha256File(path));
  if (digest != (*file)["sha256"].get<std::string>()) {
    return absl::DataLossError(absl::StrCat(path, ": SHA-256 ", digest, " does not match the manifest's ",
                                            (*file)["sha256"].get<std::string>(),
                                            " (hint: the stored split was modified; re-ingest the dataset)"));
  }
  ReaderOptions options;
  QLORAD_ASSIGN_OR_RETURN(options.format, ParseFormatName(manifest.value("format", "")));
  options.hash_source = false;
  options.max_line_bytes = size_t{1} << 30;
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<ExampleReader> reader, ExampleReader::Open(path, options));
  return std::unique_ptr<SplitReader>(
      new SplitReader(dataset_id, std::move(reader), (*file).value("examples", uint64_t{0})));
}

}  // namespace qlorad::data
