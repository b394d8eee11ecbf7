#include "core/export/gguf_adapter_export.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/adapter/peft_config.h"
#include "core/adapter/peft_match.h"
#include "core/export/gguf_llama.h"
#include "core/export/gguf_writer.h"
#include "core/model/config.h"
#include "core/model/loader.h"
#include "core/model/safetensors.h"
#include "core/model/tensor_io.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace qlorad::gguf {
namespace {


struct ModuleTensors {
  const TensorInfo* a = nullptr;
  const TensorInfo* b = nullptr;
  std::string gguf_weight;  // "blk.N.attn_q.weight"
  int64_t rank = 0;
  double b_factor = 1.0;  // folded into lora_b
  std::optional<int64_t> permute_heads;
};

absl::Status RefuseDora(const std::string& adapter_dir) {
  const std::string path = adapter_dir + "/adapter_config.json";
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_object() && json.value("use_dora", false))
    return absl::FailedPreconditionError(absl::StrCat(path, ": use_dora is true; GGUF LoRA cannot express DoRA ",
                                                      "(hint: export a merged model with --merge)"));
  return absl::OkStatus();
}

// Groups the adapter's tensors by module and checks them against the base and the
// adapter's own config, as the serving loader does (keys, targeted modules, layers).
absl::StatusOr<std::map<std::string, ModuleTensors>> CollectModules(const SafetensorsFile& file,
                                                                    const ModelConfig& config, const LoraConfig& lora) {
  std::map<std::string, ModuleTensors> modules;
  for (const TensorInfo& info : file.tensors()) {
    QLORAD_ASSIGN_OR_RETURN(PeftTensorKey key, ParsePeftTensorKey(info.name));
    const std::string& module = key.module;
    const int64_t layer = PeftLayerIndex(module, {}).value_or(-1);
    auto gguf_name = GgufTensorName(module + ".weight");
    if (!gguf_name.ok() || absl::EndsWith(module, "layernorm") || layer < 0 || layer >= config.num_hidden_layers)
      return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", info.name, "': module '", module,
                                                     "' is not a linear module of the base (", config.num_hidden_layers,
                                                     " layers; hint: maybe wrong base model?)"));
    if (!lora.Targets(module))
      return absl::InvalidArgumentError(absl::StrCat("adapter tensor '", info.name, "': module '", module,
                                                     "' is not targeted by adapter_config.json (hint: target_modules, ",
                                                     "layers_to_transform)"));
    ModuleTensors& m = modules[module];
    m.gguf_weight = *gguf_name;
    (key.is_a ? m.a : m.b) = &info;
  }
  for (auto& [module, m] : modules) {
    if (!m.a || !m.b)
      return absl::InvalidArgumentError(absl::StrCat("adapter module '", module, "' lacks its ", m.a ? "lora_B" : "lora_A",
                                                     " tensor"));
    const auto [out, in] = LinearModuleShape(config, module);
    m.rank = m.a->shape.size() == 2 ? m.a->shape[0] : -1;
    if (m.a->shape != std::vector<int64_t>{m.rank, in} || m.b->shape != std::vector<int64_t>{out, m.rank})
      return absl::InvalidArgumentError(absl::StrCat("adapter module '", module, "': lora_A ", m.a->ShapeString(),
                                                     " and lora_B ", m.b->ShapeString(), " do not fit a [", out, ", ", in,
                                                     "] base weight (hint: maybe wrong base model?)"));
    m.permute_heads = PermuteHeads(config, module);
  }
  if (modules.empty()) return absl::InvalidArgumentError("the adapter has no LoRA tensors");
  return modules;
}

// qlorad's scale of `module` divided by llama.cpp's alpha / r for it.
absl::StatusOr<double> FoldFactor(const LoraConfig& lora, const std::string& module, int64_t rank, float alpha) {
  const int64_t r = lora.RankFor(module);
  if (r != rank)
    return absl::InvalidArgumentError(absl::StrCat("adapter module '", module, "' has rank ", rank,
                                                   " but adapter_config.json gives it r = ", r,
                                                   " (hint: check r and rank_pattern)"));
  const double alpha_m = lora.AlphaFor(module);
  const double qlorad_scale = lora.use_rslora ? alpha_m / std::sqrt(static_cast<double>(r)) : alpha_m / r;
  const double llama_scale = static_cast<double>(alpha) / static_cast<double>(rank);
  if (!lora.use_rslora && alpha_m == lora.alpha) return 1.0;
  return qlorad_scale / llama_scale;
}

}  // namespace

absl::StatusOr<AdapterExportResult> ExportAdapterGguf(const AdapterExportOptions& options) {
  if (options.type != GgmlType::kF32 && options.type != GgmlType::kF16)
    return absl::InvalidArgumentError(absl::StrCat("adapter type ", GgmlTypeName(options.type),
                                                   " is not supported: GGUF LoRA tensors are f32 or f16"));
  QLORAD_RETURN_IF_ERROR(RefuseDora(options.adapter_dir));
  QLORAD_ASSIGN_OR_RETURN(LoraConfig lora, ReadPeftConfig(options.adapter_dir));
  QLORAD_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(options.model_dir));
  AdapterExportResult result;
  QLORAD_ASSIGN_OR_RETURN(result.architecture, GgufArchitecture(config));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                          SafetensorsFile::Open(options.adapter_dir + "/adapter_model.safetensors"));
  QLORAD_ASSIGN_OR_RETURN(auto modules, CollectModules(*file, config, lora));
  result.alpha = static_cast<float>(lora.alpha);

  GgufWriter writer;
  writer.SetString("general.type", "adapter");
  writer.SetString("general.architecture", result.architecture);
  writer.SetAlignment(GgufWriter::kDefaultAlignment);
  writer.SetString("adapter.type", "lora");
  writer.SetFloat32("adapter.lora.alpha", result.alpha);
  struct Source {
    const ModuleTensors* module;
    bool is_b;
  };
  std::vector<Source> sources;
  for (auto& [module, m] : modules) {
    QLORAD_ASSIGN_OR_RETURN(m.b_factor, FoldFactor(lora, module, m.rank, result.alpha));
    if (m.b_factor != 1.0) ++result.folded_modules;
    QLORAD_RETURN_IF_ERROR(writer.AddTensor({m.gguf_weight + ".lora_a", m.a->shape, options.type}));
    QLORAD_RETURN_IF_ERROR(writer.AddTensor({m.gguf_weight + ".lora_b", m.b->shape, options.type}));
    sources.push_back({&m, false});
    sources.push_back({&m, true});
  }
  result.modules = static_cast<int64_t>(modules.size());
  QLORAD_RETURN_IF_ERROR(writer.Write(options.out_path, [&](size_t i) -> absl::StatusOr<std::string> {
    const Source& s = sources[i];
    return CatchTorchErrors(absl::StrCat("exporting '", writer.tensors()[i].name, "'"),
                            [&]() -> absl::StatusOr<std::string> {
                              QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*file, s.is_b ? *s.module->b : *s.module->a));
                              at::Tensor values = view.to(at::kDouble);
                              if (s.is_b && s.module->b_factor != 1.0) values = values * s.module->b_factor;
                              if (s.is_b && s.module->permute_heads) values = PermuteRows(values, *s.module->permute_heads);
                              values = values.to(at::kFloat).contiguous();
                              return EncodeValues(absl::MakeConstSpan(values.data_ptr<float>(), values.numel()),
                                                  writer.tensors()[i].type);
                            });
  }));
  if (result.folded_modules > 0)
    result.notes.push_back(absl::StrCat(result.folded_modules, " of ", result.modules, " modules carry their scale ",
                                        "(rsLoRA / alpha_pattern) folded into lora_b, so llama.cpp's alpha/r matches"));
  return result;
}

}  // namespace qlorad::gguf
