#include "core/export/ollama_modelfile.h"

#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/tokenizer/prompt_format.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace qlorad::gguf {
namespace {

namespace fs = std::filesystem;
using tokenizer::PromptFormat;

std::string Relative(const std::string& path, const fs::path& dir) {
  fs::path rel = fs::absolute(path).lexically_normal().lexically_relative(fs::absolute(dir).lexically_normal());
  std::string text = rel.empty() ? path : rel.string();
  return text.rfind("../", 0) == 0 ? text : "./" + text;
}

// The Go template of `format`; `bos` is prepended where the format starts with BOS
// and llama.cpp will not add it itself.
std::string Template(PromptFormat format, const std::string& bos) {
  switch (format) {
    case PromptFormat::kPlain: return "{{ .Prompt }}";
    case PromptFormat::kAlpaca:
      return "Below is an instruction that describes a task. Write a response that appropriately completes the "
             "request.\n\n### Instruction:\n{{ .Prompt }}\n\n### Response:";
    case PromptFormat::kChatMl:
      return "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}<|im_start|>user\n"
             "{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";
    case PromptFormat::kLlama3:
      return bos + "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
             "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
             "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case PromptFormat::kMistral:
      return bos + "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }} [/INST]";
  }
  return "{{ .Prompt }}";
}

std::string Quoted(const std::string& text) {
  return absl::StrCat("\"", absl::StrReplaceAll(text, {{"\\", "\\\\"}, {"\"", "\\\""}}), "\"");
}

}  // namespace

absl::StatusOr<std::string> RenderModelfile(const ModelfileOptions& options) {
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::Load(options.model_dir));
  PromptFormat format = PromptFormat::kPlain;
  if (!options.prompt_format.empty()) {
    QLORAD_ASSIGN_OR_RETURN(format, tokenizer::PromptFormatFromName(options.prompt_format));
  } else if (auto detected = tokenizer::DetectPromptFormat(*tok); detected.ok()) {
    format = *detected;
  }
  const bool llama_adds_bos = tok->bos_id() && tok->SpecialPrefix() == std::vector<int32_t>{*tok->bos_id()};
  const fs::path dir = fs::path(options.base_gguf).parent_path();
  std::string text = absl::StrCat("# Ollama Modelfile written by qlorad-tool export-gguf (prompt format ",
                                  std::string(tokenizer::PromptFormatName(format)), ")\n");
  absl::StrAppend(&text, "FROM ", Relative(options.base_gguf, dir), "\n");
  if (!options.adapter_gguf.empty()) absl::StrAppend(&text, "ADAPTER ", Relative(options.adapter_gguf, dir), "\n");
  absl::StrAppend(&text, "TEMPLATE \"\"\"", Template(format, llama_adds_bos ? "" : tok->bos_token()), "\"\"\"\n");
  std::vector<std::string> stops;
  if (format == PromptFormat::kLlama3) stops.push_back("<|eot_id|>");
  if (format == PromptFormat::kChatMl) stops.push_back("<|im_end|>");
  if (!tok->eos_token().empty() && (stops.empty() || stops[0] != tok->eos_token())) stops.push_back(tok->eos_token());
  for (const std::string& stop : stops) absl::StrAppend(&text, "PARAMETER stop ", Quoted(stop), "\n");
  return text;
}

absl::StatusOr<std::string> WriteModelfile(const ModelfileOptions& options) {
  QLORAD_ASSIGN_OR_RETURN(std::string text, RenderModelfile(options));
  fs::path dir = fs::path(options.base_gguf).parent_path();
  const std::string path = (dir.empty() ? fs::path("Modelfile") : dir / "Modelfile").string();
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(path, text));
  return path;
}

}  // namespace qlorad::gguf
