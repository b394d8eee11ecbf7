// A model checkpoint in Hugging Face layout: one model.safetensors, or shards
// named by model.safetensors.index.json. Tensors are looked up by name across shards.
#ifndef QLORAD_CORE_MODEL_CHECKPOINT_H_
#define QLORAD_CORE_MODEL_CHECKPOINT_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/safetensors.h"

namespace qlorad {

class Checkpoint {
 public:
  struct Entry {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };

  // `path` is a model directory (model.safetensors.index.json preferred over
  // model.safetensors) or one .safetensors file. Every shard is opened and
  // validated; an index naming a missing shard or a tensor its shard lacks is an error.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& path);

  // NOT_FOUND naming the tensor, the checkpoint, and a hint.
  absl::StatusOr<Entry> Get(absl::string_view name) const;
  bool Contains(absl::string_view name) const { return entries_.count(std::string(name)) > 0; }
  std::vector<std::string> TensorNames() const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry> entries_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_CHECKPOINT_H_
