#include "core/data/example.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "core/data/string_view_compat.h"

namespace qlorad::data {
namespace {

using nlohmann::json;

std::string TypeName(const json& value) { return value.type_name(); }

FieldError Missing(std::string_view field, std::string_view hint) {
  return {"missing_field", std::string(field), absl::StrCat("required field is missing (hint: ", ToAbsl(hint), ")")};
}

FieldError WrongType(std::string_view field, const json& value, std::string_view expected) {
  return {"wrong_type", std::string(field), absl::StrCat("expected ", ToAbsl(expected), ", got ", TypeName(value))};
}

// Reads a required (or optional) string field.
std::optional<FieldError> GetString(const json& object, const char* key, bool required, std::string_view hint,
                                    std::string* out) {
  auto it = object.find(key);
  if (it == object.end() || (!required && it->is_null())) {
    if (required) return Missing(key, hint);
    out->clear();
    return std::nullopt;
  }
  if (!it->is_string()) return WrongType(key, *it, "a string");
  *out = it->get<std::string>();
  return std::nullopt;
}

// A label may be a string or an integer (e.g. {"class": 0} converted to {"label": 0}).
std::optional<FieldError> GetLabel(const json& object, const char* key, std::optional<std::string>* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    out->reset();
    return std::nullopt;
  }
  if (it->is_string()) {
    *out = it->get<std::string>();
  } else if (it->is_number_integer()) {
    *out = std::to_string(it->get<long long>());
  } else if (it->is_boolean()) {
    *out = it->get<bool>() ? "true" : "false";
  } else {
    return WrongType(key, *it, "a string or integer label");
  }
  return std::nullopt;
}

std::optional<FieldError> ParseChat(const json& object, Example* out) {
  auto it = object.find("messages");
  if (it == object.end()) return Missing("messages", "chat lines need \"messages\": [{\"role\", \"content\"}]");
  if (!it->is_array()) return WrongType("messages", *it, "an array");
  if (it->empty())
    return FieldError{"missing_field", "messages",
                      "messages is empty (hint: add at least a user and an assistant turn)"};
  bool has_assistant = false;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    std::string prefix = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return WrongType(prefix, m, "an object {role, content}");
    ChatMessage message;
    auto role = m.find("role");
    if (role == m.end()) return Missing(prefix + ".role", "each message needs a role");
    if (!role->is_string()) return WrongType(prefix + ".role", *role, "a string");
    message.role = role->get<std::string>();
    if (message.role != "system" && message.role != "user" && message.role != "assistant") {
      return FieldError{
          "unknown_role", prefix + ".role",
          absl::StrCat("unknown role '", message.role.substr(0, 32), "' (hint: roles are system, user and assistant)")};
    }
    auto content = m.find("content");
    if (content == m.end()) return Missing(prefix + ".content", "each message needs content");
    if (!content->is_string()) return WrongType(prefix + ".content", *content, "a string");
    message.content = content->get<std::string>();
    has_assistant |= message.role == "assistant";
    out->messages.push_back(std::move(message));
  }
  if (!has_assistant) {
    return FieldError{"missing_field", "messages",
                      "no assistant turn (hint: a chat example needs at least one assistant message to learn from)"};
  }
  return std::nullopt;
}

std::optional<FieldError> ParsePreference(const json& object, Example* out) {
  constexpr std::string_view kHint = "preference lines need \"prompt\", \"chosen\" and \"rejected\"";
  if (auto e = GetString(object, "prompt", true, kHint, &out->prompt)) return e;
  if (auto e = GetString(object, "chosen", true, kHint, &out->chosen)) return e;
  if (auto e = GetString(object, "rejected", true, kHint, &out->rejected)) return e;
  if (out->chosen == out->rejected)
    return FieldError{"same_completion", "rejected",
                      "chosen and rejected are the same text (hint: a pair must show a preference; drop the line)"};
  return std::nullopt;
}

std::optional<FieldError> ParseClassification(const json& object, Example* out) {
  if (auto e = GetString(object, "text", true, "classification lines need \"text\" and \"label\"", &out->text))
    return e;
  std::optional<std::string> label;
  if (auto e = GetLabel(object, "label", &label)) return e;
  if (auto e = GetLabel(object, "label_a", &out->label_a)) return e;
  if (auto e = GetLabel(object, "label_b", &out->label_b)) return e;
  if (auto e = GetLabel(object, "resolution", &out->resolution)) return e;
  if (out->label_a.has_value() != out->label_b.has_value()) {
    return Missing(out->label_a ? "label_b" : "label_a", "two-annotator data needs both label_a and label_b");
  }
  if (!label && !out->label_a) {
    return Missing("label", "add \"label\", or \"label_a\" and \"label_b\" from two annotators");
  }
  if (label) {
    out->label = *label;
  } else if (out->resolution) {
    out->label = *out->resolution;
  } else if (*out->label_a == *out->label_b) {
    out->label = *out->label_a;
  }  // else: unresolved disagreement, left empty for the consistency stage.
  if (label && out->label_a && !out->resolution) out->resolution = *label;
  return std::nullopt;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Per byte: 0 = separator, otherwise the byte to emit (lower-cased ASCII; bytes >= 0x80 as is).
struct NormalizeTable {
  unsigned char map[2][256];
  NormalizeTable() {
    for (int p = 0; p < 2; ++p) {
      for (int c = 0; c < 256; ++c) {
        bool space = IsSpace(static_cast<char>(c)) || (p == 1 && c < 0x80 && std::ispunct(c));
        map[p][c] = space ? 0 : static_cast<unsigned char>(c < 0x80 ? std::tolower(c) : c);
      }
      map[p][0] = 0;
    }
  }
};

std::string Normalize(std::string_view text, bool punctuation_is_space) {
  static const NormalizeTable table;
  const unsigned char* map = table.map[punctuation_is_space ? 1 : 0];
  std::string out(text.size(), '\0');
  size_t n = 0;
  bool pending_space = false;
  for (char c : text) {
    unsigned char m = map[static_cast<unsigned char>(c)];
    if (m == 0) {
      pending_space = n > 0;
      continue;
    }
    if (pending_space) out[n++] = ' ';
    pending_space = false;
    out[n++] = static_cast<char>(m);
  }
  out.resize(n);
  return out;
}

}  // namespace

std::string_view FormatName(DatasetFormat format) {
  switch (format) {
    case DatasetFormat::kAuto:
      return "auto";
    case DatasetFormat::kAlpaca:
      return "alpaca";
    case DatasetFormat::kChat:
      return "chat";
    case DatasetFormat::kPromptCompletion:
      return "prompt_completion";
    case DatasetFormat::kClassification:
      return "classification";
    case DatasetFormat::kPreference:
      return "preference";
  }
  return "unknown";
}

absl::StatusOr<DatasetFormat> ParseFormatName(std::string_view name) {
  for (DatasetFormat f : {DatasetFormat::kAuto, DatasetFormat::kAlpaca, DatasetFormat::kChat,
                          DatasetFormat::kPromptCompletion, DatasetFormat::kClassification, DatasetFormat::kPreference}) {
    if (FormatName(f) == name) return f;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dataset format '", ToAbsl(name),
                   "' (expected auto, alpaca, chat, prompt_completion, classification or preference)"));
}

std::optional<DatasetFormat> DetectFormat(const json& object) {
  if (!object.is_object()) return std::nullopt;
  if (object.contains("messages")) return DatasetFormat::kChat;
  if (object.contains("instruction")) return DatasetFormat::kAlpaca;
  // Preference: both sides, or one of them without a completion (then the missing side is reported).
  const bool chosen = object.contains("chosen"), rejected = object.contains("rejected");
  if ((chosen && rejected) || ((chosen || rejected) && !object.contains("completion"))) return DatasetFormat::kPreference;
  if (object.contains("prompt") || object.contains("completion")) return DatasetFormat::kPromptCompletion;
  if (object.contains("text")) return DatasetFormat::kClassification;
  return std::nullopt;
}

std::optional<FieldError> ExampleFromJson(const json& object, DatasetFormat format, Example* out) {
  *out = Example{};
  out->format = format;
  if (!object.is_object()) {
    return FieldError{"wrong_type", "<line>", absl::StrCat("expected a JSON object, got ", TypeName(object))};
  }
  if (auto it = object.find("source_line"); it != object.end() && it->is_number_integer()) {
    out->source_line = it->get<int64_t>();
  }
  switch (format) {
    case DatasetFormat::kAlpaca:
      if (auto e =
              GetString(object, "instruction", true, "alpaca lines need instruction and output", &out->instruction))
        return e;
      if (auto e = GetString(object, "input", false, "", &out->input)) return e;
      return GetString(object, "output", true, "alpaca lines need instruction and output", &out->output);
    case DatasetFormat::kChat:
      return ParseChat(object, out);
    case DatasetFormat::kPromptCompletion:
      if (auto e = GetString(object, "prompt", true, "prompt/completion lines need both keys", &out->prompt)) return e;
      return GetString(object, "completion", true, "prompt/completion lines need both keys", &out->completion);
    case DatasetFormat::kClassification:
      return ParseClassification(object, out);
    case DatasetFormat::kPreference:
      return ParsePreference(object, out);
    case DatasetFormat::kAuto:
      break;
  }
  return FieldError{"internal", "<line>", "format must be resolved before parsing"};
}

namespace {

// Appends `s` (valid UTF-8) as a JSON string literal: quotes, backslashes and control
// characters escaped, everything else copied (the same text nlohmann::json parses back).
void AppendJsonString(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

void AppendField(std::string* out, const char* key, std::string_view value, bool first = false) {
  if (!first) out->push_back(',');
  out->push_back('"');
  out->append(key);
  out->append("\":");
  AppendJsonString(out, value);
}

}  // namespace

std::string ExampleToJsonLine(const Example& example) {
  std::string out;
  size_t estimate = 64;
  ForEachTextField(example, [&](std::string_view, const std::string& v) { estimate += v.size() + 16; });
  out.reserve(estimate);
  out.push_back('{');
  switch (example.format) {
    case DatasetFormat::kAlpaca:
      AppendField(&out, "instruction", example.instruction, true);
      AppendField(&out, "input", example.input);
      AppendField(&out, "output", example.output);
      break;
    case DatasetFormat::kChat:
      out.append("\"messages\":[");
      for (size_t i = 0; i < example.messages.size(); ++i) {
        if (i) out.push_back(',');
        out.push_back('{');
        AppendField(&out, "role", example.messages[i].role, true);
        AppendField(&out, "content", example.messages[i].content);
        out.push_back('}');
      }
      out.push_back(']');
      break;
    case DatasetFormat::kPromptCompletion:
      AppendField(&out, "prompt", example.prompt, true);
      AppendField(&out, "completion", example.completion);
      break;
    case DatasetFormat::kPreference:
      AppendField(&out, "prompt", example.prompt, true);
      AppendField(&out, "chosen", example.chosen);
      AppendField(&out, "rejected", example.rejected);
      break;
    case DatasetFormat::kClassification:
      AppendField(&out, "text", example.text, true);
      AppendField(&out, "label", example.label);
      if (example.label_a) AppendField(&out, "label_a", *example.label_a);
      if (example.label_b) AppendField(&out, "label_b", *example.label_b);
      break;
    case DatasetFormat::kAuto:
      break;
  }
  if (out.size() > 1) out.push_back(',');
  absl::StrAppend(&out, "\"source_line\":", example.source_line, "}");
  return out;
}

void ForEachTextField(Example& example, const std::function<void(std::string_view, std::string&)>& fn) {
  switch (example.format) {
    case DatasetFormat::kAlpaca:
      fn("instruction", example.instruction);
      fn("input", example.input);
      fn("output", example.output);
      break;
    case DatasetFormat::kChat:
      for (size_t i = 0; i < example.messages.size(); ++i) fn("messages.content", example.messages[i].content);
      break;
    case DatasetFormat::kPromptCompletion:
      fn("prompt", example.prompt);
      fn("completion", example.completion);
      break;
    case DatasetFormat::kPreference:
      fn("prompt", example.prompt);
      fn("chosen", example.chosen);
      fn("rejected", example.rejected);
      break;
    case DatasetFormat::kClassification:
      fn("text", example.text);
      break;
    case DatasetFormat::kAuto:
      break;
  }
}

void ForEachTextField(const Example& example, const std::function<void(std::string_view, const std::string&)>& fn) {
  ForEachTextField(const_cast<Example&>(example), [&](std::string_view name, std::string& value) { fn(name, value); });
}

std::string InputSide(const Example& example) {
  switch (example.format) {
    case DatasetFormat::kAlpaca:
      return absl::StrCat(example.instruction, "\n", example.input);
    case DatasetFormat::kChat: {
      std::string out;
      for (const ChatMessage& m : example.messages) {
        if (m.role != "assistant") absl::StrAppend(&out, m.role, ":", m.content, "\n");
      }
      return out;
    }
    case DatasetFormat::kPromptCompletion:
    case DatasetFormat::kPreference:
      return example.prompt;
    case DatasetFormat::kClassification:
      return example.text;
    case DatasetFormat::kAuto:
      break;
  }
  return "";
}

std::string_view TargetText(const Example& example) {
  switch (example.format) {
    case DatasetFormat::kAlpaca:
      return example.output;
    case DatasetFormat::kChat:
      for (auto it = example.messages.rbegin(); it != example.messages.rend(); ++it) {
        if (it->role == "assistant") return it->content;
      }
      return "";
    case DatasetFormat::kPromptCompletion:
      return example.completion;
    case DatasetFormat::kClassification:
      return example.label;
    case DatasetFormat::kPreference:
      return example.chosen;
    case DatasetFormat::kAuto:
      break;
  }
  return "";
}

std::string NormalizeWhitespaceCase(std::string_view text) { return Normalize(text, false); }
std::string NormalizeNearDuplicate(std::string_view text) { return Normalize(text, true); }

uint64_t NormalizedHash64(std::string_view text, bool punctuation_is_space, uint64_t seed) {
  static const NormalizeTable table;
  const unsigned char* map = table.map[punctuation_is_space ? 1 : 0];
  // The normalised bytes are packed 8 at a time into a word and mixed per word.
  uint64_t h = 0xcbf29ce484222325ULL ^ seed, word = 0;
  int filled = 0;
  uint64_t emitted = 0;
  bool pending_space = false;
  auto emit = [&](unsigned char b) {
    word |= static_cast<uint64_t>(b) << (8 * filled);
    if (++filled == 8) {
      h = (h ^ word) * 0x100000001b3ULL;
      h ^= h >> 29;
      word = 0;
      filled = 0;
    }
    ++emitted;
  };
  for (char c : text) {
    unsigned char m = map[static_cast<unsigned char>(c)];
    if (m == 0) {
      pending_space = emitted > 0;
      continue;
    }
    if (pending_space) emit(' ');
    pending_space = false;
    emit(m);
  }
  h = (h ^ word ^ (emitted << 56)) * 0x100000001b3ULL;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  return h;
}

uint64_t StableHash64(std::string_view data) {
  // FNV-1a over 8-byte words with a final avalanche (splitmix64 finaliser); stable everywhere.
  uint64_t h = 0xcbf29ce484222325ULL ^ (data.size() * 0x9e3779b97f4a7c15ULL);
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t w = 0;
    for (int b = 0; b < 8; ++b) w |= static_cast<uint64_t>(static_cast<unsigned char>(data[i + b])) << (8 * b);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  for (; i < data.size(); ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 0x100000001b3ULL;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

}  // namespace qlorad::data
