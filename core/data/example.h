// One training example in any of the supported dataset formats, plus the
// format-independent views every later stage needs (text fields for PII and
// validation, the "input side" key used to keep a text out of both splits, the
// "target" used for format adherence) and the canonical JSONL form stored on disk.
//
// Formats (one JSON object per line; unknown keys are ignored):
//   kAlpaca            {"instruction": str, "input": str (optional, default ""), "output": str}
//   kChat              {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
//                      (non-empty, at least one assistant turn)
//   kPromptCompletion  {"prompt": str, "completion": str}
//   kClassification    {"text": str, "label": str|int}
//                      or {"text", "label_a", "label_b"} from two annotators, optionally with
//                      "label" or "resolution" holding the adjudicated label.
//   kPreference        {"prompt": str, "chosen": str, "rejected": str} (preference tuning, DPO:
//                      two completions of one prompt, the preferred one first; they must differ)
// Stored canonical lines carry the same keys plus "source_line" (the line of the
// original file the example came from), for lineage.
#ifndef QLORAD_CORE_DATA_EXAMPLE_H_
#define QLORAD_CORE_DATA_EXAMPLE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qlorad::data {

enum class DatasetFormat { kAuto, kAlpaca, kChat, kPromptCompletion, kClassification, kPreference };

// "alpaca", "chat", "prompt_completion", "classification", "preference" ("auto" for kAuto).
std::string_view FormatName(DatasetFormat format);
// Inverse of FormatName; INVALID_ARGUMENT listing the accepted names.
absl::StatusOr<DatasetFormat> ParseFormatName(std::string_view name);

struct ChatMessage {
  std::string role;
  std::string content;
};

struct Example {
  DatasetFormat format = DatasetFormat::kAlpaca;
  int64_t line = 0;         // 1-based line in the file it was read from (CSV: record start line)
  int64_t source_line = 0;  // line in the original source (== line unless read from a stored split)
  // kAlpaca
  std::string instruction, input, output;
  // kChat
  std::vector<ChatMessage> messages;
  // kPromptCompletion (prompt also kPreference's)
  std::string prompt, completion;
  // kPreference
  std::string chosen, rejected;
  // kClassification. `label` is the final label; label_a/label_b are the two annotators'.
  std::string text, label;
  std::optional<std::string> label_a, label_b, resolution;
};

// A per-line problem: the stable `kind` tag (see example_reader.h), the field it concerns
// ("<line>" for whole-line problems) and a human-readable message with a hint.
struct FieldError {
  std::string kind;
  std::string field;
  std::string message;
};

// Parses one JSON object into `format` (never kAuto). On failure returns the FieldError.
std::optional<FieldError> ExampleFromJson(const nlohmann::json& object, DatasetFormat format, Example* out);
// Guesses the format from an object's keys; nullopt if none fits.
std::optional<DatasetFormat> DetectFormat(const nlohmann::json& object);

// Canonical stored JSON line (no trailing newline).
std::string ExampleToJsonLine(const Example& example);

// Calls fn(field_name, text) for every free-text field (not labels), mutable.
void ForEachTextField(Example& example, const std::function<void(std::string_view, std::string&)>& fn);
void ForEachTextField(const Example& example, const std::function<void(std::string_view, const std::string&)>& fn);

// The part a model is conditioned on (instruction+input, prompt, text, non-assistant turns).
std::string InputSide(const Example& example);
// The part the format-adherence checks look at: output, completion, last assistant turn,
// the label for classification, or the chosen completion.
std::string_view TargetText(const Example& example);

// Lowercase ASCII, whitespace runs collapsed to one space, trimmed.
std::string NormalizeWhitespaceCase(std::string_view text);
// As above but every ASCII punctuation character also counts as whitespace: the key for
// "near-duplicate" texts (and for keeping a text out of both splits).
std::string NormalizeNearDuplicate(std::string_view text);

// Stable (platform- and run-independent) 64-bit hash.
uint64_t StableHash64(std::string_view data);
// Stable 64-bit hash of the normalised form of `text` (NormalizeWhitespaceCase, or
// NormalizeNearDuplicate with punctuation_is_space), computed without building it. Chain
// fields by passing the previous result as `seed`.
uint64_t NormalizedHash64(std::string_view text, bool punctuation_is_space, uint64_t seed = 0);

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_EXAMPLE_H_
