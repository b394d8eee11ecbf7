// qlorad-tool export-gguf: a model (and optionally a LoRA adapter) as GGUF files
// for llama.cpp / Ollama, plus an Ollama Modelfile beside them.
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/export/gguf_adapter_export.h"
#include "core/export/gguf_model_export.h"
#include "core/export/merge.h"
#include "core/export/ollama_modelfile.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool export-gguf --model DIR --out FILE [--type f32|f16|q8_0|q4_0]\n"
    "         [--adapter PEFT_DIR [--adapter-out FILE | --merge [--merge-onto dequant|original]]]\n"
    "         [--name NAME] [--prompt-format NAME] [--no-modelfile] [--pure]\n"
    "  Writes the model as one GGUF file llama.cpp and Ollama load (tokenizer embedded; q/k rows\n"
    "  permuted for llama/mistral). --type applies to 2-D weights (default f32); norms and biases stay f32;\n"
    "  with q4_0 the output head (lm_head, or tied embeddings) is q8_0 unless --pure; rows that are not\n"
    "  whole 32-value blocks fall back to f16.\n"
    "  With --adapter also a GGUF LoRA adapter (default <out stem>-lora.gguf; f32, or f16 with --type f16;\n"
    "  rsLoRA/alpha_pattern scales folded into lora_b so llama.cpp's alpha/r reproduces qlorad's scale)\n"
    "  and an Ollama Modelfile beside --out (FROM, ADAPTER, TEMPLATE of the prompt format, stop tokens).\n"
    "  With --adapter --merge one GGUF of the merged model instead (as `qlorad-tool merge`: a QLoRA adapter\n"
    "  is merged onto dequant(4-bit W) unless --merge-onto original; GGUF LoRA cannot express DoRA, a\n"
    "  merge can); qlorad.base_fingerprint and qlorad.adapter_id are recorded in the file's metadata.\n";

std::string DefaultAdapterPath(const std::string& out) {
  std::filesystem::path path(out);
  return (path.parent_path() / (path.stem().string() + "-lora.gguf")).string();
}

absl::Status ExportGguf(const Args& args) {
  QLORAD_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"model", "adapter", "type", "out", "adapter-out", "name",
                                                           "prompt-format", "merge-onto"},
                                                    {"no-modelfile", "pure", "merge", "help"}));
  if (flags.GetBool("help")) {
    std::fputs(kUsage, stdout);
    return absl::OkStatus();
  }
  gguf::ModelExportOptions model;
  QLORAD_ASSIGN_OR_RETURN(model.model_dir, flags.GetRequired("model"));
  QLORAD_ASSIGN_OR_RETURN(model.out_path, flags.GetRequired("out"));
  QLORAD_ASSIGN_OR_RETURN(model.type, gguf::ParseGgmlType(flags.GetOr("type", "f32")));
  model.name = flags.GetOr("name", "");
  model.pure = flags.GetBool("pure");

  const bool merge = flags.GetBool("merge");
  if (merge && (!flags.Has("adapter") || flags.Has("adapter-out")))
    return absl::InvalidArgumentError("--merge needs --adapter and writes no separate adapter file (no --adapter-out)");
  if (flags.Has("merge-onto") && !merge) return absl::InvalidArgumentError("--merge-onto needs --merge");
  MergedWeights merged;
  if (merge) {
    MergeOptions merge_options;
    QLORAD_ASSIGN_OR_RETURN(merge_options.onto, ParseMergeOnto(flags.GetOr("merge-onto", "auto"), "--merge-onto"));
    QLORAD_ASSIGN_OR_RETURN(merged, MergeAdapterIntoWeights(model.model_dir, flags.GetOr("adapter", ""), merge_options));
    model.overrides = &merged.weights;
    model.metadata = merged.GgufMetadata();
    std::printf("merged adapter %s onto %s: %lld adapted modules\n", merged.adapter_id.c_str(),
                MergeOntoName(merged.onto), static_cast<long long>(merged.adapted_modules));
  }
  const bool adapter_file = flags.Has("adapter") && !merge;
  gguf::AdapterExportOptions adapter;
  if (adapter_file) {
    adapter.model_dir = model.model_dir;
    adapter.adapter_dir = flags.GetOr("adapter", "");
    adapter.out_path = flags.GetOr("adapter-out", DefaultAdapterPath(model.out_path));
    adapter.type = model.type == gguf::GgmlType::kF16 ? gguf::GgmlType::kF16 : gguf::GgmlType::kF32;
    if (model.type != adapter.type && model.type != gguf::GgmlType::kF32)
      std::printf("note: the adapter is written as f32 (GGUF LoRA tensors are not quantized)\n");
  } else if (flags.Has("adapter-out")) {
    return absl::InvalidArgumentError("--adapter-out needs --adapter");
  }

  // The adapter first: it is small, and its refusals (DoRA, wrong base) come before the long base export.
  if (adapter_file) {
    QLORAD_ASSIGN_OR_RETURN(gguf::AdapterExportResult lora, gguf::ExportAdapterGguf(adapter));
    for (const std::string& note : lora.notes) std::printf("note: %s\n", note.c_str());
    std::printf("wrote %s: LoRA adapter, %lld modules, alpha %g (%s)\n", adapter.out_path.c_str(),
                static_cast<long long>(lora.modules), lora.alpha, gguf::GgmlTypeName(adapter.type));
  }
  QLORAD_ASSIGN_OR_RETURN(gguf::ModelExportResult base, gguf::ExportModelGguf(model));
  for (const std::string& note : base.notes) std::printf("note: %s\n", note.c_str());
  std::printf("wrote %s: %s, %lld tensors (%s), %lld tokens (%s, %lld padded), %llu bytes\n", model.out_path.c_str(),
              base.architecture.c_str(), static_cast<long long>(base.tensor_count), gguf::GgmlTypeName(model.type),
              static_cast<long long>(base.vocab.token_count), base.vocab.model.c_str(),
              static_cast<long long>(base.vocab.padded), static_cast<unsigned long long>(base.file_bytes));
  if (!flags.GetBool("no-modelfile")) {
    gguf::ModelfileOptions modelfile{model.model_dir, model.out_path, adapter_file ? adapter.out_path : "",
                                     flags.GetOr("prompt-format", "")};
    QLORAD_ASSIGN_OR_RETURN(std::string path, gguf::WriteModelfile(modelfile));
    std::printf("wrote %s\n", path.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

int RunExportGguf(const Args& args) { return ReportStatus("export-gguf", ExportGguf(args)); }

}  // namespace qlorad::tool
