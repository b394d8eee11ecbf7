#include "core/model/checkpoint.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace fs = std::filesystem;
namespace {

absl::StatusOr<std::map<std::string, std::string>> ReadIndex(const std::string& index_path) {
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object())
    return absl::InvalidArgumentError(absl::StrCat("'", index_path, "' is not valid JSON"));
  auto map_it = json.find("weight_map");
  if (map_it == json.end() || !map_it->is_object())
    return absl::InvalidArgumentError(absl::StrCat("'", index_path, "' has no object field 'weight_map'"));
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, file] : map_it->items()) {
    if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos)
      return absl::InvalidArgumentError(
          absl::StrCat("'", index_path, "': weight_map entry '", name, "' must be a file name in the same directory"));
    weight_map[name] = file.get<std::string>();
  }
  return weight_map;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& path) {
  auto checkpoint = std::make_unique<Checkpoint>();
  checkpoint->path_ = path;
  if (!fs::is_directory(path)) {
    QLORAD_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
    for (const TensorInfo& info : file->tensors()) checkpoint->entries_[info.name] = {file.get(), &info};
    checkpoint->files_.push_back(std::move(file));
    return checkpoint;
  }
  std::string index_path = path + "/model.safetensors.index.json";
  if (!fs::exists(index_path)) {
    if (!fs::exists(path + "/model.safetensors"))
      return absl::NotFoundError(absl::StrCat("no model.safetensors or model.safetensors.index.json in '", path,
                                              "' (hint: is this a Hugging Face model directory?)"));
    return Open(path + "/model.safetensors");
  }
  QLORAD_ASSIGN_OR_RETURN(auto weight_map, ReadIndex(index_path));
  std::map<std::string, const SafetensorsFile*> opened;
  for (const auto& [name, file_name] : weight_map) {
    if (!opened.count(file_name)) {
      auto file = SafetensorsFile::Open(path + "/" + file_name);
      if (!file.ok())
        return absl::Status(file.status().code(), absl::StrCat("shard of '", index_path, "': ", file.status().message()));
      opened[file_name] = file->get();
      checkpoint->files_.push_back(std::move(file).value());
    }
    const SafetensorsFile* shard = opened[file_name];
    const TensorInfo* info = shard->Find(name);
    if (info == nullptr)
      return absl::DataLossError(absl::StrCat("'", index_path, "' maps tensor '", name, "' to '", file_name,
                                              "', which does not contain it"));
    checkpoint->entries_[name] = {shard, info};
  }
  return checkpoint;
}

absl::StatusOr<Checkpoint::Entry> Checkpoint::Get(absl::string_view name) const {
  auto it = entries_.find(std::string(name));
  if (it == entries_.end())
    return absl::NotFoundError(absl::StrCat("tensor '", name, "' does not exist in checkpoint '", path_,
                                            "' (hint: wrong architecture in config.json, or an incomplete download?)"));
  return it->second;
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  for (const auto& [name, entry] : entries_) names.push_back(name);
  return names;
}

}  // namespace qlorad
