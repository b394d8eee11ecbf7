#include "core/export/gguf_model_export.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <memory>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/export/gguf_llama.h"
#include "core/export/gguf_writer.h"
#include "core/model/checkpoint.h"
#include "core/model/config.h"
#include "core/model/loader.h"
#include "core/model/tensor_io.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace qlorad::gguf {
namespace {

// The Hugging Face shape of an exported tensor under `config`.
std::vector<int64_t> ExpectedShape(const ModelConfig& c, const std::string& name) {
  if (name == "model.embed_tokens.weight" || name == "lm_head.weight") return {c.vocab_size, c.hidden_size};
  if (absl::EndsWith(name, "norm.weight")) return {c.hidden_size};
  const std::string module = name.substr(0, name.rfind('.'));
  auto [out, in] = LinearModuleShape(c, module);
  if (absl::EndsWith(name, ".bias")) return {out};
  return {out, in};
}

// One export tensor: where it comes from and how it is written.
struct Planned {
  std::string hf_name;  // "" for generated tensors (rope_freqs)
  std::optional<int64_t> permute_heads;
};

class ModelExporter {
 public:
  ModelExporter(const ModelExportOptions& options, ModelConfig config, std::unique_ptr<Checkpoint> checkpoint)
      : options_(options), config_(std::move(config)), checkpoint_(std::move(checkpoint)) {}

  absl::StatusOr<ModelExportResult> Run() {
    ModelExportResult result;
    QLORAD_ASSIGN_OR_RETURN(result.architecture, GgufArchitecture(config_));
    std::string name = options_.name;
    if (name.empty()) name = std::filesystem::path(options_.model_dir).lexically_normal().filename().string();
    if (name.empty() || name == ".") name = "qlorad-export";
    QLORAD_RETURN_IF_ERROR(SetModelMetadata(config_, name, LlamaFileType(options_.type), writer_));
    QLORAD_ASSIGN_OR_RETURN(result.vocab, SetTokenizerMetadata(options_.model_dir, config_, writer_));
    for (const auto& [key, value] : options_.metadata) writer_.SetString(key, value);
    QLORAD_RETURN_IF_ERROR(PlanTensors(result.notes));
    QLORAD_RETURN_IF_ERROR(writer_.Write(options_.out_path, [this](size_t i) { return Encode(i); }));
    result.tensor_count = static_cast<int64_t>(plan_.size());
    std::error_code ec;
    result.file_bytes = std::filesystem::file_size(options_.out_path, ec);
    return result;
  }

 private:
  absl::Status PlanTensors(std::vector<std::string>& notes) {
    std::set<std::string> exported;
    for (const std::string& hf : HfTensorNames(config_)) {
      exported.insert(hf);
      const std::vector<int64_t> shape = ExpectedShape(config_, hf);
      if (!Overridden(hf)) {
        QLORAD_ASSIGN_OR_RETURN(Checkpoint::Entry entry, checkpoint_->Get(hf));
        QLORAD_RETURN_IF_ERROR(CheckTensorShape(entry, hf, shape));
      }
      GgmlType type = shape.size() == 1 ? GgmlType::kF32 : options_.type;
      if (type == GgmlType::kQ4_0 && !options_.pure && IsOutputHead(hf)) {
        notes.push_back(absl::StrCat(hf, ": the output head is written as q8_0 (llama.cpp's llama-quantize keeps it ",
                                     "above q4_0 too; --pure writes it as q4_0)"));
        type = GgmlType::kQ8_0;
      }
      if (shape.back() % GgmlBlockValues(type) != 0) {
        notes.push_back(absl::StrCat(hf, ": rows of ", shape.back(), " values are not whole ", GgmlTypeName(type),
                                     " blocks of 32; written as f16"));
        type = GgmlType::kF16;
      }
      QLORAD_ASSIGN_OR_RETURN(std::string gguf_name, GgufTensorName(hf));
      QLORAD_RETURN_IF_ERROR(writer_.AddTensor({gguf_name, shape, type}));
      plan_.push_back({hf, PermuteHeads(config_, hf)});
      if (hf == "model.embed_tokens.weight" && config_.rope_scaling.type == RopeScalingType::kLlama3) {
        QLORAD_RETURN_IF_ERROR(writer_.AddTensor({"rope_freqs.weight", {config_.head_dim / 2}, GgmlType::kF32}));
        plan_.push_back({"", std::nullopt});
      }
    }
    if (options_.overrides) {
      for (const auto& [hf, tensor] : *options_.overrides) {
        if (!exported.count(hf))
          return absl::InvalidArgumentError(absl::StrCat("override tensor '", hf, "' is not a tensor of the export"));
        if (tensor.sizes().vec() != ExpectedShape(config_, hf))
          return absl::InvalidArgumentError(absl::StrCat("override tensor '", hf, "' has the wrong shape"));
      }
    }
    return absl::OkStatus();
  }

  // The tensor that projects onto the vocabulary: lm_head, or the embeddings when tied.
  bool IsOutputHead(const std::string& hf) const {
    return hf == "lm_head.weight" || (config_.tie_word_embeddings && hf == "model.embed_tokens.weight");
  }

  bool Overridden(const std::string& hf) const { return options_.overrides && options_.overrides->count(hf); }

  // The float32 CPU values of a Hugging Face tensor, as llama.cpp wants its rows.
  absl::StatusOr<at::Tensor> Values(const Planned& planned) {
    if (planned.hf_name.empty()) {
      std::vector<float> factors = Llama3RopeFactors(config_);
      return at::tensor(factors, at::TensorOptions().dtype(at::kFloat));
    }
    at::Tensor tensor;
    if (Overridden(planned.hf_name)) {
      tensor = options_.overrides->at(planned.hf_name).detach().to(at::kCPU, at::kFloat).contiguous();
    } else {
      QLORAD_ASSIGN_OR_RETURN(Checkpoint::Entry entry, checkpoint_->Get(planned.hf_name));
      QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*entry.file, *entry.info));
      tensor = view.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
      entry.file->ReleasePages(*entry.info);
    }
    if (planned.permute_heads) tensor = PermuteRows(tensor, *planned.permute_heads);
    return tensor;
  }

  absl::StatusOr<std::string> Encode(size_t index) {
    const Planned& planned = plan_[index];
    return CatchTorchErrors(absl::StrCat("exporting '", writer_.tensors()[index].name, "'"),
                            [&]() -> absl::StatusOr<std::string> {
                              QLORAD_ASSIGN_OR_RETURN(at::Tensor values, Values(planned));
                              return EncodeValues(absl::MakeConstSpan(values.data_ptr<float>(), values.numel()),
                                                  writer_.tensors()[index].type);
                            });
  }

  const ModelExportOptions& options_;
  ModelConfig config_;
  std::unique_ptr<Checkpoint> checkpoint_;
  GgufWriter writer_;
  std::vector<Planned> plan_;
};

}  // namespace

absl::StatusOr<ModelExportResult> ExportModelGguf(const ModelExportOptions& options) {
  QLORAD_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(options.model_dir));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(options.model_dir));
  ModelExporter exporter(options, std::move(config), std::move(checkpoint));
  return exporter.Run();
}

}  // namespace qlorad::gguf
