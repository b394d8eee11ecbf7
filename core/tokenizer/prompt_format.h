// Prompt formats for training and serving: how a conversation or a
// prompt/completion pair becomes text, token ids and a trainable mask.
//
// Formats (each follows a published template; tests hold the vectors):
//   plain    prompt + completion + EOS                              (qlorad's own)
//   alpaca   stanford_alpaca train.py PROMPT_DICT + output + EOS
//   chatml   "<|im_start|>{role}\n{content}<|im_end|>\n" per message (OpenAI ChatML /
//            Qwen2 chat_template)
//   llama3   Meta-Llama-3-Instruct chat_template: BOS, then per message
//            "<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>"
//   mistral  Mistral-7B-Instruct-v0.1: BOS "[INST] {user} [/INST]{assistant}</s>" with
//            " " before each later "[INST]"; a system message is prepended to the first
//            user message followed by "\n\n" (as Mistral's later templates do).
// The trainable (completion) tokens are each assistant reply plus the end-of-turn
// marker the template puts after it (EOS, <|im_end|>, <|eot_id|>); everything else
// (system, user, headers, separators, BOS) is prompt.
//
// Tokenizing: marker tokens (<|im_start|>, <|eot_id|>, BOS, EOS, ...) become their ids
// directly; the text between two markers is encoded as one string, exactly as the
// tokenizer would encode the whole rendered text (added tokens split first), so ids
// equal Encode(RenderedText). Inside such a run, the prompt/completion boundary is
// the longest common prefix of Encode(run prefix) and Encode(run).
#ifndef QLORAD_CORE_TOKENIZER_PROMPT_FORMAT_H_
#define QLORAD_CORE_TOKENIZER_PROMPT_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/tokenizer.h"

namespace qlorad::tokenizer {

enum class PromptFormat { kPlain, kAlpaca, kChatMl, kLlama3, kMistral };

// "plain", "alpaca", "chatml", "llama3", "mistral" (case-insensitive; "llama-3",
// "llama3-chat", "inst" accepted). INVALID_ARGUMENT listing the names otherwise.
absl::StatusOr<PromptFormat> PromptFormatFromName(std::string_view name);
std::string_view PromptFormatName(PromptFormat format);

// From tokenizer_config.json's chat_template (its marker strings), else from the
// vocabulary (<|im_start|> -> chatml, <|start_header_id|> -> llama3).
// NOT_FOUND with a hint to name a format when nothing identifies one.
absl::StatusOr<PromptFormat> DetectPromptFormat(const Tokenizer& tokenizer);

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// One piece of rendered text. `marker` pieces are special-token strings
// (BOS, <|eot_id|>, ...) encoded as their id when the vocabulary has them.
struct PromptSegment {
  std::string text;
  bool trainable = false;
  bool marker = false;
};

struct RenderedExample {
  std::string text;                // the full rendered string
  std::vector<int32_t> ids;
  std::vector<uint8_t> trainable;  // 1 = completion token (trained on), same size as ids
};

// Renders a conversation. Roles must be system/user/assistant; chat formats
// need alternating user/assistant after an optional leading system message;
// alpaca and plain take exactly [system?] user assistant (system is dropped by
// alpaca, an error for plain). `add_generation_prompt` ends with the assistant
// header (for serving); then the last message must be a user message.
absl::StatusOr<std::vector<PromptSegment>> RenderChat(PromptFormat format, const std::vector<ChatMessage>& messages,
                                                      const Tokenizer& tokenizer, bool add_generation_prompt = false);

// A prompt/completion pair: plain and alpaca use the prompt as is (alpaca: as the
// instruction, with `input` as its Input section when non-empty); chat formats
// render it as one user turn and one assistant turn.
absl::StatusOr<std::vector<PromptSegment>> RenderPromptCompletion(PromptFormat format, std::string_view prompt,
                                                                  std::string_view completion,
                                                                  const Tokenizer& tokenizer,
                                                                  std::string_view input = "");

// Tokenizes rendered segments (see the header comment).
absl::StatusOr<RenderedExample> TokenizeSegments(const std::vector<PromptSegment>& segments,
                                                 const Tokenizer& tokenizer);

// The number of prompt tokens of a rendered example: the index of its first trainable
// (completion) token, or the whole length when none is trainable.
size_t PromptLength(const std::vector<uint8_t>& trainable);

// Tokenizes `segments` and keeps the prompt: the ids before the first completion token,
// i.e. what a request for this example carries.
absl::StatusOr<std::vector<int64_t>> TokenizePrompt(const std::vector<PromptSegment>& segments,
                                                    const Tokenizer& tokenizer);

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_PROMPT_FORMAT_H_
