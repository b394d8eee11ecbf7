#include "core/tokenizer/prompt_format.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {
namespace {

// stanford_alpaca train.py PROMPT_DICT.
constexpr std::string_view kAlpacaWithInput =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n";
constexpr std::string_view kAlpacaNoInput =
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n";

// Python's str.strip() on whitespace (Jinja's `trim`).
std::string Trim(std::string_view s) {
  auto is_space = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

class SegmentList {
 public:
  void Text(std::string_view text, bool trainable = false) { segments_.push_back({std::string(text), trainable, false}); }
  void Marker(std::string_view token, bool trainable = false) { segments_.push_back({std::string(token), trainable, true}); }
  std::vector<PromptSegment> Take() { return std::move(segments_); }

 private:
  std::vector<PromptSegment> segments_;
};

absl::Status CheckRoles(const std::vector<ChatMessage>& messages, size_t first, bool add_generation_prompt) {
  if (messages.size() <= first) return absl::InvalidArgumentError("messages: no user message");
  for (size_t i = first; i < messages.size(); ++i) {
    const char* expected = (i - first) % 2 == 0 ? "user" : "assistant";
    if (messages[i].role != expected) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role is '", messages[i].role, "', expected '",
                                                     expected, "' (roles must alternate user/assistant after an "
                                                     "optional leading system message)"));
    }
  }
  if (add_generation_prompt && messages.back().role != "user") {
    return absl::InvalidArgumentError("add_generation_prompt needs the last message to be a user message");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RequireToken(const std::string& token, const char* what, PromptFormat format) {
  if (token.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("prompt format '", AsAbsl(PromptFormatName(format)), "' needs the tokenizer's ",
                                                      what, " token, which is not known (hint: set ", what,
                                                      "_token in tokenizer_config.json)"));
  }
  return token;
}

}  // namespace

absl::StatusOr<PromptFormat> PromptFormatFromName(std::string_view name) {
  const std::string n = absl::AsciiStrToLower(AsAbsl(name));
  if (n == "plain" || n == "completion") return PromptFormat::kPlain;
  if (n == "alpaca") return PromptFormat::kAlpaca;
  if (n == "chatml") return PromptFormat::kChatMl;
  if (n == "llama3" || n == "llama-3" || n == "llama3-chat") return PromptFormat::kLlama3;
  if (n == "mistral" || n == "inst" || n == "mistral-inst") return PromptFormat::kMistral;
  return absl::InvalidArgumentError(absl::StrCat("unknown prompt format '", AsAbsl(name),
                                                 "' (known: plain, alpaca, chatml, llama3, mistral)"));
}

std::string_view PromptFormatName(PromptFormat format) {
  switch (format) {
    case PromptFormat::kPlain: return "plain";
    case PromptFormat::kAlpaca: return "alpaca";
    case PromptFormat::kChatMl: return "chatml";
    case PromptFormat::kLlama3: return "llama3";
    case PromptFormat::kMistral: return "mistral";
  }
  return "unknown";
}

absl::StatusOr<PromptFormat> DetectPromptFormat(const Tokenizer& tokenizer) {
  const std::string& t = tokenizer.config().chat_template;
  if (!t.empty()) {
    if (absl::StrContains(t, "<|im_start|>")) return PromptFormat::kChatMl;
    if (absl::StrContains(t, "<|start_header_id|>")) return PromptFormat::kLlama3;
    if (absl::StrContains(t, "[INST]")) return PromptFormat::kMistral;
    if (absl::StrContains(t, "### Instruction")) return PromptFormat::kAlpaca;
  }
  if (tokenizer.TokenToId("<|im_start|>")) return PromptFormat::kChatMl;
  if (tokenizer.TokenToId("<|start_header_id|>")) return PromptFormat::kLlama3;
  if (tokenizer.TokenToId("[INST]")) return PromptFormat::kMistral;
  return absl::NotFoundError(t.empty() ? "no chat_template in tokenizer_config.json and no known chat tokens in the "
                                         "vocabulary (hint: name a prompt format: plain, alpaca, chatml, llama3, mistral)"
                                       : "chat_template in tokenizer_config.json matches no known prompt format (hint: "
                                         "name one: plain, alpaca, chatml, llama3, mistral)");
}

absl::StatusOr<std::vector<PromptSegment>> RenderChat(PromptFormat format, const std::vector<ChatMessage>& messages,
                                                      const Tokenizer& tokenizer, bool add_generation_prompt) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role '", r, "' is not system/user/assistant"));
    }
    if (r == "system" && i != 0) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "]: a system message must come first"));
    }
  }
  const size_t first = !messages.empty() && messages[0].role == "system" ? 1 : 0;
  if (auto status = CheckRoles(messages, first, add_generation_prompt); !status.ok()) return status;
  SegmentList out;
  switch (format) {
    case PromptFormat::kPlain:
    case PromptFormat::kAlpaca: {
      if (format == PromptFormat::kPlain && first == 1) {
        return absl::InvalidArgumentError("prompt format 'plain' has no system message");
      }
      if (messages.size() - first > 2 || (!add_generation_prompt && messages.size() - first != 2)) {
        return absl::InvalidArgumentError(absl::StrCat("prompt format '", AsAbsl(PromptFormatName(format)),
                                                       "' takes one user and one assistant message"));
      }
      const std::string completion = add_generation_prompt ? "" : messages[first + 1].content;
      return RenderPromptCompletion(format, messages[first].content, completion, tokenizer);
    }
    case PromptFormat::kChatMl: {
      for (const ChatMessage& m : messages) {
        const bool train = m.role == "assistant";
        out.Marker("<|im_start|>");
        out.Text(m.role + "\n");
        out.Text(m.content, train);
        out.Marker("<|im_end|>", train);
        out.Text("\n");
      }
      if (add_generation_prompt) {
        out.Marker("<|im_start|>");
        out.Text("assistant\n");
      }
      return out.Take();
    }
    case PromptFormat::kLlama3: {
      auto bos = RequireToken(tokenizer.bos_token(), "bos", format);
      if (!bos.ok()) return bos.status();
      out.Marker(*bos);
      for (const ChatMessage& m : messages) {
        const bool train = m.role == "assistant";
        out.Marker("<|start_header_id|>");
        out.Text(m.role);
        out.Marker("<|end_header_id|>");
        out.Text("\n\n");
        out.Text(Trim(m.content), train);
        out.Marker("<|eot_id|>", train);
      }
      if (add_generation_prompt) {
        out.Marker("<|start_header_id|>");
        out.Text("assistant");
        out.Marker("<|end_header_id|>");
        out.Text("\n\n");
      }
      return out.Take();
    }
    case PromptFormat::kMistral: {
      auto bos = RequireToken(tokenizer.bos_token(), "bos", format);
      if (!bos.ok()) return bos.status();
      auto eos = RequireToken(tokenizer.eos_token(), "eos", format);
      if (!eos.ok()) return eos.status();
      out.Marker(*bos);
      for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (m.role == "user") {
          if (i > first) out.Text(" ");
          std::string content = m.content;
          if (i == first && first == 1) content = messages[0].content + "\n\n" + content;
          out.Text("[INST] " + content + " [/INST]");
        } else {
          out.Text(m.content, true);
          out.Marker(*eos, true);
        }
      }
      return out.Take();
    }
  }
  return absl::InternalError("unknown prompt format");
}

absl::StatusOr<std::vector<PromptSegment>> RenderPromptCompletion(PromptFormat format, std::string_view prompt,
                                                                  std::string_view completion,
                                                                  const Tokenizer& tokenizer, std::string_view input) {
  if (format == PromptFormat::kChatMl || format == PromptFormat::kLlama3 || format == PromptFormat::kMistral) {
    if (!input.empty()) return absl::InvalidArgumentError("an 'input' field is only used by the alpaca format");
    std::vector<ChatMessage> messages = {{"user", std::string(prompt)}};
    if (!completion.empty()) messages.push_back({"assistant", std::string(completion)});
    return RenderChat(format, messages, tokenizer, completion.empty());
  }
  auto eos = RequireToken(tokenizer.eos_token(), "eos", format);
  if (!eos.ok()) return eos.status();
  SegmentList out;
  for (int32_t id : tokenizer.SpecialPrefix()) {
    if (auto token = tokenizer.IdToToken(id)) out.Marker(*token);
  }
  if (format == PromptFormat::kAlpaca) {
    if (input.empty()) {
      out.Text(absl::StrCat(AsAbsl(kAlpacaNoInput), AsAbsl(prompt), "\n\n### Response:"));
    } else {
      out.Text(absl::StrCat(AsAbsl(kAlpacaWithInput), AsAbsl(prompt), "\n\n### Input:\n", AsAbsl(input), "\n\n### Response:"));
    }
  } else {
    if (!input.empty()) return absl::InvalidArgumentError("an 'input' field is only used by the alpaca format");
    out.Text(prompt);
  }
  if (!completion.empty()) {
    out.Text(completion, true);
    out.Marker(*eos, true);
  }
  return out.Take();
}

absl::StatusOr<RenderedExample> TokenizeSegments(const std::vector<PromptSegment>& segments,
                                                 const Tokenizer& tokenizer) {
  RenderedExample example;
  std::vector<const PromptSegment*> run;
  auto flush = [&]() -> absl::Status {
    if (run.empty()) return absl::OkStatus();
    std::string full;
    for (const PromptSegment* s : run) full += s->text;
    auto ids = tokenizer.Encode(full, /*add_special_tokens=*/false);
    if (!ids.ok()) return ids.status();
    // Boundaries where the trainable flag changes.
    size_t begin_token = 0;
    size_t offset = 0;
    for (size_t i = 0; i < run.size(); ++i) {
      offset += run[i]->text.size();
      const bool last = i + 1 == run.size();
      if (!last && run[i + 1]->trainable == run[i]->trainable) continue;
      size_t end_token = ids->size();
      if (!last) {
        auto prefix = tokenizer.Encode(std::string_view(full).substr(0, offset), false);
        if (!prefix.ok()) return prefix.status();
        end_token = static_cast<size_t>(
            std::mismatch(prefix->begin(), prefix->end(), ids->begin(), ids->end()).first - prefix->begin());
        end_token = std::max(end_token, begin_token);
      }
      for (size_t t = begin_token; t < end_token; ++t) example.trainable.push_back(run[i]->trainable ? 1 : 0);
      begin_token = end_token;
    }
    example.ids.insert(example.ids.end(), ids->begin(), ids->end());
    run.clear();
    return absl::OkStatus();
  };
  for (const PromptSegment& segment : segments) {
    example.text += segment.text;
    std::optional<int32_t> id;
    if (segment.marker) id = tokenizer.TokenToId(segment.text);
    if (!id) {
      run.push_back(&segment);
      continue;
    }
    if (auto status = flush(); !status.ok()) return status;
    example.ids.push_back(*id);
    example.trainable.push_back(segment.trainable ? 1 : 0);
  }
  if (auto status = flush(); !status.ok()) return status;
  return example;
}

size_t PromptLength(const std::vector<uint8_t>& trainable) {
  return std::find(trainable.begin(), trainable.end(), 1) - trainable.begin();
}

absl::StatusOr<std::vector<int64_t>> TokenizePrompt(const std::vector<PromptSegment>& segments,
                                                    const Tokenizer& tokenizer) {
  absl::StatusOr<RenderedExample> rendered = TokenizeSegments(segments, tokenizer);
  if (!rendered.ok()) return rendered.status();
  return std::vector<int64_t>(rendered->ids.begin(), rendered->ids.begin() + PromptLength(rendered->trainable));
}

}  // namespace qlorad::tokenizer
