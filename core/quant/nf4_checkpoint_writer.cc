// QuantizeCheckpoint (declared in nf4_model.h): streaming conversion of a
// full-precision checkpoint into bitsandbytes' 4-bit layout.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/model/safetensors_writer.h"
#include "core/model/tensor_io.h"
#include "core/quant/nf4_model.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

// The quant_state JSON's size must be known before the tensor is quantized (the
// header comes first), so it is padded with spaces to this many bytes.
constexpr size_t kStateJsonBytes = 256;
constexpr uint64_t kMaxShardBytes = 5000000000;  // transformers' default max_shard_size "5GB"

enum class Part { kCopy, kDenseF32, kPacked, kAbsmax, kQuantMap, kNestedAbsmax, kNestedQuantMap, kStateJson };

// Tensors given instead of read (WriteInitializedBase), keyed by weight name.
struct GivenWeights {
  std::map<std::string, Quant4bitState> quantized;
  std::map<std::string, at::Tensor> dense;
};

struct OutputTensor {
  TensorSpec spec;
  Part part;
  std::string source;  // the tensor read from the input checkpoint
};

std::string StateJson(const Quant4bitState& s) {
  Json json = {{"quant_type", kernels::QuantTypeName(s.quant_type)},
               {"blocksize", s.blocksize},
               {"dtype", s.dtype == at::kBFloat16 ? "bfloat16" : s.dtype == at::kHalf ? "float16" : "float32"},
               {"shape", s.shape}};
  if (s.nested()) {
    json["nested_blocksize"] = s.nested_blocksize;
    json["nested_dtype"] = "float32";
    json["nested_offset"] = s.nested_offset;
  }
  return json.dump();
}

std::vector<OutputTensor> PlanOutput(const Checkpoint& checkpoint, const std::set<std::string>& quantized,
                                     const QuantOptions& options, const GivenWeights& given) {
  std::vector<OutputTensor> out;
  const std::string suffix = absl::StrCat(".quant_state.bitsandbytes__", kernels::QuantTypeName(options.quant_type));
  for (const std::string& name : checkpoint.TensorNames()) {
    const TensorInfo& info = *checkpoint.Get(name)->info;
    if (given.dense.count(name)) {
      out.push_back({{name, DType::kF32, info.shape}, Part::kDenseF32, name});
      continue;
    }
    if (!quantized.count(name)) {
      out.push_back({{name, info.dtype, info.shape}, Part::kCopy, name});
      continue;
    }
    const int64_t n = info.NumElements(), blocks = kernels::NumBlocks(n, options.blocksize);
    out.push_back({{name, DType::kU8, {kernels::PackedBytes(n), 1}}, Part::kPacked, name});
    out.push_back({{name + ".absmax", options.double_quant ? DType::kU8 : DType::kF32, {blocks}}, Part::kAbsmax, name});
    out.push_back({{name + ".quant_map", DType::kF32, {16}}, Part::kQuantMap, name});
    if (options.double_quant) {
      out.push_back({{name + ".nested_absmax", DType::kF32, {kernels::NumBlocks(blocks, options.nested_blocksize)}},
                     Part::kNestedAbsmax, name});
      out.push_back({{name + ".nested_quant_map", DType::kF32, {256}}, Part::kNestedQuantMap, name});
    }
    out.push_back({{name + suffix, DType::kU8, {static_cast<int64_t>(kStateJsonBytes)}}, Part::kStateJson, name});
  }
  return out;
}

absl::Status CopyBytes(const at::Tensor& t, absl::Span<uint8_t> out, const std::string& name) {
  at::Tensor cpu = t.to(at::kCPU).contiguous();
  if (static_cast<size_t>(cpu.nbytes()) != out.size())
    return absl::InternalError(absl::StrCat("size mismatch writing '", name, "'"));
  std::memcpy(out.data(), cpu.data_ptr(), out.size());
  return absl::OkStatus();
}

class QuantizingFiller {
 public:
  QuantizingFiller(const Checkpoint& checkpoint, const std::vector<OutputTensor>& plan, const QuantOptions& options,
                   const GivenWeights& given)
      : checkpoint_(checkpoint), plan_(plan), options_(options), given_(given) {}

  absl::Status Fill(size_t index, absl::Span<uint8_t> out) {
    const OutputTensor& t = plan_[index];
    QLORAD_ASSIGN_OR_RETURN(Checkpoint::Entry entry, checkpoint_.Get(t.source));
    if (t.part == Part::kCopy) {
      auto bytes = entry.file->Data(*entry.info);
      std::memcpy(out.data(), bytes.data(), bytes.size());
      entry.file->ReleasePages(*entry.info);
      return absl::OkStatus();
    }
    if (t.part == Part::kDenseF32) {
      const at::Tensor& w = given_.dense.at(t.source);
      if (w.numel() != entry.info->NumElements())
        return absl::InternalError(absl::StrCat("'", t.source, "': given weight has the wrong size"));
      return CopyBytes(w.to(at::kFloat), out, t.spec.name);
    }
    if (auto it = given_.quantized.find(t.source); it != given_.quantized.end() && t.source != current_) {
      state_ = it->second.To(at::kCPU);
      current_ = t.source;
    }
    if (t.source != current_) {  // the group's tensors are consecutive: quantize once
      QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*entry.file, *entry.info));
      auto state = Quantize4bitTensor(view, options_);
      entry.file->ReleasePages(*entry.info);
      if (!state.ok()) return absl::Status(state.status().code(), absl::StrCat(t.source, ": ", state.status().message()));
      state_ = std::move(state).value();
      current_ = t.source;
    }
    switch (t.part) {
      case Part::kPacked: return CopyBytes(state_.packed, out, t.spec.name);
      case Part::kAbsmax: return CopyBytes(state_.absmax, out, t.spec.name);
      case Part::kQuantMap: return CopyBytes(state_.quant_map, out, t.spec.name);
      case Part::kNestedAbsmax: return CopyBytes(state_.nested_absmax, out, t.spec.name);
      case Part::kNestedQuantMap: return CopyBytes(state_.nested_quant_map, out, t.spec.name);
      case Part::kStateJson: {
        std::string json = StateJson(state_);
        if (json.size() > out.size()) return absl::InternalError("quant_state JSON exceeds its reserved size");
        std::memset(out.data(), ' ', out.size());
        std::memcpy(out.data(), json.data(), json.size());
        return absl::OkStatus();
      }
      case Part::kCopy:
      case Part::kDenseF32: break;
    }
    return absl::InternalError("unreachable");
  }

 private:
  const Checkpoint& checkpoint_;
  const std::vector<OutputTensor>& plan_;
  const QuantOptions& options_;
  const GivenWeights& given_;
  std::string current_;
  Quant4bitState state_;
};

// config.json's quantization_config block as transformers writes it for bitsandbytes 4-bit.
Json QuantizationConfig(const QuantOptions& options, const std::string& compute_dtype) {
  return {{"quant_method", "bitsandbytes"}, {"_load_in_4bit", true}, {"_load_in_8bit", false},
          {"load_in_4bit", true}, {"load_in_8bit", false},
          {"bnb_4bit_quant_type", kernels::QuantTypeName(options.quant_type)},
          {"bnb_4bit_use_double_quant", options.double_quant}, {"bnb_4bit_compute_dtype", compute_dtype},
          {"bnb_4bit_quant_storage", "uint8"}, {"llm_int8_skip_modules", nullptr}, {"llm_int8_threshold", 6.0},
          {"llm_int8_has_fp16_weight", false}, {"llm_int8_enable_fp32_cpu_offload", false}};
}

// quant: the 4-bit layout written (quantization_config), or none for a dense checkpoint.
absl::Status WriteConfigAndTokenizer(const std::string& model_dir, const std::string& out_dir,
                                     const std::optional<QuantOptions>& quant, const std::string& compute_dtype) {
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(model_dir + "/config.json"));
  Json config = Json::parse(text, nullptr, false);
  if (config.is_discarded()) return absl::InvalidArgumentError(model_dir + "/config.json is not valid JSON");
  if (quant.has_value()) config["quantization_config"] = QuantizationConfig(*quant, compute_dtype);
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/config.json", config.dump(2) + "\n"));
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                           "generation_config.json"}) {
    if (!fs::exists(fs::path(model_dir) / name)) continue;
    QLORAD_ASSIGN_OR_RETURN(std::string contents, ReadFileToString((fs::path(model_dir) / name).string()));
    QLORAD_RETURN_IF_ERROR(WriteFileAtomically((fs::path(out_dir) / name).string(), contents));
  }
  return absl::OkStatus();
}

// quant: the 4-bit layout of every decoder linear weight, or none (dense: only `given.dense`
// replaces tensors).
absl::Status WriteCheckpoint(const std::string& model_dir, const std::string& tmp_dir,
                             const std::optional<QuantOptions>& quant, const GivenWeights& given) {
  QLORAD_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(model_dir));
  for (const auto& [name, tensor] : given.dense) QLORAD_RETURN_IF_ERROR(checkpoint->Get(name).status());
  for (const auto& [name, state] : given.quantized) QLORAD_RETURN_IF_ERROR(checkpoint->Get(name).status());
  const QuantOptions options = quant.value_or(QuantOptions());
  std::set<std::string> quantized;
  for (int64_t i = 0; quant.has_value() && i < config.num_hidden_layers; ++i)
    for (const std::string& module : LayerLinearModules(i)) {
      if (HasBnbState(*checkpoint, module))
        return absl::FailedPreconditionError(absl::StrCat("'", model_dir, "' is already quantized (", module, ")"));
      QLORAD_RETURN_IF_ERROR(checkpoint->Get(module + ".weight").status());
      quantized.insert(module + ".weight");
    }
  std::vector<OutputTensor> plan = PlanOutput(*checkpoint, quantized, options, given);
  std::vector<TensorSpec> specs;
  for (const OutputTensor& t : plan) specs.push_back(t.spec);
  QuantizingFiller filler(*checkpoint, plan, options, given);
  QLORAD_RETURN_IF_ERROR(WriteShardedSafetensors(tmp_dir, specs, {{"format", "pt"}}, kMaxShardBytes,
                                                 [&](size_t i, absl::Span<uint8_t> out) {
                                                   return CatchTorchErrors("quantize", [&] { return filler.Fill(i, out); });
                                                 }));
  const std::string compute = config.torch_dtype == "float32" ? "float32" : config.torch_dtype;
  return WriteConfigAndTokenizer(model_dir, tmp_dir, quant, compute);
}

absl::Status CheckOutputDir(const std::string& out_dir) {
  if (fs::exists(out_dir) && !fs::is_empty(out_dir))
    return absl::AlreadyExistsError(absl::StrCat("output directory '", out_dir, "' exists and is not empty"));
  return absl::OkStatus();
}

}  // namespace

absl::Status QuantizeCheckpoint(const std::string& model_dir, const std::string& out_dir, const QuantOptions& options) {
  QLORAD_RETURN_IF_ERROR(CheckOutputDir(out_dir));
  return WriteDirectoryAtomically(
      out_dir, [&](const std::string& tmp_dir) { return WriteCheckpoint(model_dir, tmp_dir, options, GivenWeights()); });
}

absl::Status WriteInitializedBase(const std::string& model_dir, const std::string& out_dir, const InitializedBase& base) {
  QLORAD_RETURN_IF_ERROR(CheckOutputDir(out_dir));
  GivenWeights given;
  for (const auto& [module, state] : base.quantized) given.quantized.emplace(module + ".weight", state);
  for (const auto& [module, weight] : base.dense) given.dense.emplace(module + ".weight", weight);
  if (!given.quantized.empty() && !base.quant.has_value())
    return absl::InvalidArgumentError("WriteInitializedBase: 4-bit modules given without the 4-bit layout");
  return WriteDirectoryAtomically(
      out_dir, [&](const std::string& tmp_dir) { return WriteCheckpoint(model_dir, tmp_dir, base.quant, given); });
}

}  // namespace qlorad
