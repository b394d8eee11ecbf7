#include "core/tokenizer/instruction_prompt.h"

#include <string>

namespace qlorad::tokenizer {

absl::StatusOr<std::vector<PromptSegment>> RenderInstruction(PromptFormat format, std::string_view instruction,
                                                             std::string_view input, std::string_view completion,
                                                             const Tokenizer& tokenizer) {
  if (format == PromptFormat::kAlpaca) return RenderPromptCompletion(format, instruction, completion, tokenizer, input);
  if (input.empty()) return RenderPromptCompletion(format, instruction, completion, tokenizer);
  const std::string prompt = std::string(instruction) + "\n\n" + std::string(input);
  return RenderPromptCompletion(format, prompt, completion, tokenizer);
}

absl::StatusOr<std::vector<PromptSegment>> RenderClassification(PromptFormat format, std::string_view text,
                                                                std::string_view label, const Tokenizer& tokenizer) {
  return RenderInstruction(format, kClassificationInstruction, text, label, tokenizer);
}

}  // namespace qlorad::tokenizer
