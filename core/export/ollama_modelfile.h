// An Ollama Modelfile beside a GGUF export: FROM the base GGUF, ADAPTER the LoRA
// GGUF (when there is one), TEMPLATE in Go template syntax rendering the prompt
// format qlorad trains with (tokenizer/prompt_format.h), and PARAMETER stop for
// the end-of-turn and EOS tokens. Paths are written relative to the Modelfile.
#ifndef QLORAD_CORE_EXPORT_OLLAMA_MODELFILE_H_
#define QLORAD_CORE_EXPORT_OLLAMA_MODELFILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace qlorad::gguf {

struct ModelfileOptions {
  std::string model_dir;     // the HF model (its tokenizer decides format and stop tokens)
  std::string base_gguf;     // the Modelfile is written in this file's directory
  std::string adapter_gguf;  // "" for none
  std::string prompt_format;  // plain|alpaca|chatml|llama3|mistral; "" = detect, else plain
};

// The Modelfile text.
absl::StatusOr<std::string> RenderModelfile(const ModelfileOptions& options);
// Writes <dir of base_gguf>/Modelfile atomically; returns its path.
absl::StatusOr<std::string> WriteModelfile(const ModelfileOptions& options);

}  // namespace qlorad::gguf

#endif  // QLORAD_CORE_EXPORT_OLLAMA_MODELFILE_H_
