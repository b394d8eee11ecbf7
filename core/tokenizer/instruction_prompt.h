// Instruction prompts: an instruction with optional input text (alpaca's Input
// section, a blank line and the text in the other formats), and the classification
// prompt built from it. Training (dataset examples), serving (generate requests,
// label scoring) and evaluation all render through these, so a request's prompt is
// token for token the prompt the adapter was trained on.
#ifndef QLORAD_CORE_TOKENIZER_INSTRUCTION_PROMPT_H_
#define QLORAD_CORE_TOKENIZER_INSTRUCTION_PROMPT_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/prompt_format.h"
#include "core/tokenizer/tokenizer.h"

namespace qlorad::tokenizer {

// The instruction classification examples are rendered with (the text as the input,
// the label as the completion).
inline constexpr char kClassificationInstruction[] = "Classify the following text. Answer with the label only.";

// `instruction` with `input`, then `completion` ("" for a serving prompt): alpaca puts
// `input` in its Input section; the other formats send instruction + blank line + input
// as the prompt (the instruction alone when `input` is empty).
absl::StatusOr<std::vector<PromptSegment>> RenderInstruction(PromptFormat format, std::string_view instruction,
                                                             std::string_view input, std::string_view completion,
                                                             const Tokenizer& tokenizer);

// The classification prompt for `text` with `label` as the completion:
// RenderInstruction(kClassificationInstruction, text, label).
absl::StatusOr<std::vector<PromptSegment>> RenderClassification(PromptFormat format, std::string_view text,
                                                                std::string_view label, const Tokenizer& tokenizer);

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_INSTRUCTION_PROMPT_H_
