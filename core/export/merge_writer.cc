// WriteMergedModel (declared in merge.h): streams the base checkpoint into a new HF model
// directory with the merged weights in place, one tensor at a time.
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <ATen/ATen.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/export/merge.h"
#include "core/model/checkpoint.h"
#include "core/model/safetensors_writer.h"
#include "core/model/tensor_io.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/time_util.h"
#include "core/util/torch_status.h"
#include "core/util/version.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr uint64_t kMaxShardBytes = 5000000000;  // transformers' default max_shard_size "5GB"

bool IsFloating(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16 || d == DType::kF64; }

const char* TorchDTypeName(DType d) {
  return d == DType::kBF16 ? "bfloat16" : d == DType::kF16 ? "float16" : "float32";
}

// A bitsandbytes side tensor ("<module>.weight.absmax", ".quant_state.bitsandbytes__nf4", ...)
// of a weight that the merge replaced with a dense one.
bool IsReplacedBnbSide(const std::string& name, const std::map<std::string, at::Tensor>& weights) {
  const size_t pos = name.find(".weight.");
  if (pos == std::string::npos) return false;
  return weights.count(name.substr(0, pos + 7)) > 0;
}

struct Source {
  std::string name;
  bool merged = false;
};

absl::Status CopyAs(const at::Tensor& t, at::ScalarType type, absl::Span<uint8_t> out, const std::string& name) {
  return CatchTorchErrors(absl::StrCat("writing '", name, "'"), [&]() -> absl::Status {
    at::Tensor converted = t.to(at::kCPU, type).contiguous();
    if (static_cast<size_t>(converted.nbytes()) != out.size())
      return absl::InternalError(absl::StrCat("size mismatch writing '", name, "'"));
    std::memcpy(out.data(), converted.data_ptr(), out.size());
    return absl::OkStatus();
  });
}

absl::Status WriteTensors(const Checkpoint& checkpoint, const MergedWeights& merged, const std::string& dir, DType dtype) {
  QLORAD_ASSIGN_OR_RETURN(at::ScalarType type, ToScalarType(dtype));
  std::vector<TensorSpec> specs;
  std::vector<Source> sources;
  for (const std::string& name : checkpoint.TensorNames()) {
    if (auto it = merged.weights.find(name); it != merged.weights.end()) {
      specs.push_back({name, dtype, it->second.sizes().vec()});
      sources.push_back({name, true});
    } else if (!IsReplacedBnbSide(name, merged.weights)) {
      const TensorInfo& info = *checkpoint.Get(name)->info;
      specs.push_back({name, IsFloating(info.dtype) ? dtype : info.dtype, info.shape});
      sources.push_back({name, false});
    }
  }
  for (const auto& [name, tensor] : merged.weights)
    if (!checkpoint.Contains(name)) return absl::InternalError(absl::StrCat("merged weight '", name, "' is not in the base"));
  std::map<std::string, std::string> metadata = merged.Metadata();
  metadata["format"] = "pt";
  return WriteShardedSafetensors(dir, specs, metadata, kMaxShardBytes, [&](size_t i, absl::Span<uint8_t> out) {
    const Source& source = sources[i];
    if (source.merged) return CopyAs(merged.weights.at(source.name), type, out, source.name);
    QLORAD_ASSIGN_OR_RETURN(Checkpoint::Entry entry, checkpoint.Get(source.name));
    absl::Status status;
    if (specs[i].dtype == entry.info->dtype) {
      auto bytes = entry.file->Data(*entry.info);
      std::memcpy(out.data(), bytes.data(), bytes.size());
    } else {
      QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*entry.file, *entry.info));
      status = CopyAs(view, type, out, source.name);
    }
    entry.file->ReleasePages(*entry.info);
    return status;
  });
}

absl::Status WriteConfigAndTokenizer(const std::string& model_dir, const std::string& dir, DType dtype) {
  const std::string config_path = model_dir + "/config.json";
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(config_path));
  Json config = Json::parse(text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) return absl::InvalidArgumentError(config_path + " is not a JSON object");
  config["torch_dtype"] = TorchDTypeName(dtype);
  config.erase("quantization_config");
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(dir + "/config.json", config.dump(2) + "\n"));
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                           "generation_config.json", "chat_template.jinja"}) {
    const fs::path source = fs::path(model_dir) / name;
    if (!fs::exists(source)) continue;
    QLORAD_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(source.string()));
    QLORAD_RETURN_IF_ERROR(WriteFileAtomically((fs::path(dir) / name).string(), contents));
  }
  return absl::OkStatus();
}

absl::Status WriteRecord(const std::string& model_dir, const MergedWeights& merged, const std::string& dir, DType dtype) {
  Json record;
  record["created_utc"] = NowUtcRfc3339();
  record["base_model"] = {{"path", model_dir}, {"fingerprint", merged.base_fingerprint}};
  record["adapter"] = {{"id", merged.adapter_id}, {"sha256", merged.adapter_sha256}};
  record["merge_onto"] = MergeOntoName(merged.onto);
  record["quantization"] = merged.quantization.empty() ? Json() : Json(merged.quantization);
  record["dtype"] = TorchDTypeName(dtype);
  record["adapted_modules"] = merged.adapted_modules;
  record["replaced_weights"] = merged.weights.size();
  record["formula"] = "W' = W0 + scaling * B @ A (fp32), W0 = dequant(quant(W)) for merge_onto dequant";
  record["versions"] = {{"qlorad", QloradVersion()}};
  return WriteFileAtomically(dir + "/merge_record.json", record.dump(2) + "\n");
}

}  // namespace

absl::StatusOr<DType> ParseMergeDType(const std::string& name, const std::string& field) {
  if (name == "f32" || name == "float32") return DType::kF32;
  if (name == "f16" || name == "float16") return DType::kF16;
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  return absl::InvalidArgumentError(absl::StrCat(field, ": '", name, "' is not one of f32, f16, bf16"));
}

absl::Status WriteMergedModel(const std::string& model_dir, const MergedWeights& merged, const std::string& out_dir,
                              DType dtype) {
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16)
    return absl::InvalidArgumentError(absl::StrCat("dtype ", DTypeName(dtype), " is not F32, F16 or BF16"));
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_empty(out_dir, ec))
    return absl::AlreadyExistsError(absl::StrCat("output directory '", out_dir, "' exists and is not empty"));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(model_dir));
  return WriteDirectoryAtomically(out_dir, [&](const std::string& tmp_dir) {
    QLORAD_RETURN_IF_ERROR(WriteTensors(*checkpoint, merged, tmp_dir, dtype));
    QLORAD_RETURN_IF_ERROR(WriteConfigAndTokenizer(model_dir, tmp_dir, dtype));
    return WriteRecord(model_dir, merged, tmp_dir, dtype);
  });
}

}  // namespace qlorad
