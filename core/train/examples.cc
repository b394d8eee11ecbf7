#include "core/train/examples.h"

#include "absl/strings/str_cat.h"
#include "core/tokenizer/instruction_prompt.h"
#include "core/util/status_macros.h"

namespace qlorad {
namespace {

absl::StatusOr<std::vector<tokenizer::PromptSegment>> Segments(const data::Example& example,
                                                               tokenizer::PromptFormat format,
                                                               const tokenizer::Tokenizer& tok) {
  switch (example.format) {
    case data::DatasetFormat::kAlpaca:
      return tokenizer::RenderPromptCompletion(format, example.instruction, example.output, tok, example.input);
    case data::DatasetFormat::kPromptCompletion:
      return tokenizer::RenderPromptCompletion(format, example.prompt, example.completion, tok);
    case data::DatasetFormat::kClassification:
      return tokenizer::RenderClassification(format, example.text, example.label, tok);
    case data::DatasetFormat::kChat: {
      std::vector<tokenizer::ChatMessage> messages;
      for (const auto& m : example.messages) messages.push_back({m.role, m.content});
      return tokenizer::RenderChat(format, messages, tok);
    }
    case data::DatasetFormat::kPreference:
      return absl::FailedPreconditionError(
          "a preference pair {prompt, chosen, rejected} has no single completion to fine-tune on (hint: method dpo)");
    default:
      return absl::InvalidArgumentError("example has no concrete format");
  }
}

}  // namespace

absl::StatusOr<TrainingExample> RenderTrainingExample(const data::Example& example, tokenizer::PromptFormat format,
                                                      const tokenizer::Tokenizer& tokenizer) {
  QLORAD_ASSIGN_OR_RETURN(auto segments, Segments(example, format, tokenizer));
  QLORAD_ASSIGN_OR_RETURN(tokenizer::RenderedExample rendered, tokenizer::TokenizeSegments(segments, tokenizer));
  TrainingExample out;
  out.ids.assign(rendered.ids.begin(), rendered.ids.end());
  out.trainable = rendered.trainable;
  return out;
}

absl::StatusOr<PreferencePair> RenderPreferencePair(const data::Example& example, tokenizer::PromptFormat format,
                                                    const tokenizer::Tokenizer& tokenizer) {
  if (example.format != data::DatasetFormat::kPreference)
    return absl::FailedPreconditionError(absl::StrCat("method dpo trains on preference pairs {prompt, chosen, rejected}; this is a ",
                                                      std::string(data::FormatName(example.format)), " example (hint: method sft)"));
  PreferencePair pair;
  for (auto [completion, out] : {std::pair{&example.chosen, &pair.chosen}, std::pair{&example.rejected, &pair.rejected}}) {
    QLORAD_ASSIGN_OR_RETURN(auto segments, tokenizer::RenderPromptCompletion(format, example.prompt, *completion, tokenizer));
    QLORAD_ASSIGN_OR_RETURN(tokenizer::RenderedExample rendered, tokenizer::TokenizeSegments(segments, tokenizer));
    out->ids.assign(rendered.ids.begin(), rendered.ids.end());
    out->trainable = rendered.trainable;
  }
  return pair;
}

absl::StatusOr<std::vector<PreferencePair>> ReadPreferencePairs(data::SplitReader& reader, const std::string& what,
                                                               tokenizer::PromptFormat format,
                                                               const tokenizer::Tokenizer& tokenizer) {
  std::vector<PreferencePair> pairs;
  data::Example example;
  while (true) {
    QLORAD_ASSIGN_OR_RETURN(bool more, reader.Next(&example));
    if (!more) break;
    auto pair = RenderPreferencePair(example, format, tokenizer);
    if (!pair.ok())
      return absl::Status(pair.status().code(), absl::StrCat(what, " line ", example.line, ": ", pair.status().message()));
    pairs.push_back(std::move(pair).value());
  }
  return pairs;
}

absl::StatusOr<std::vector<PreferencePair>> LoadPreferencePairs(const data::DatasetStore& store,
                                                                const std::string& dataset_id,
                                                                tokenizer::PromptFormat format,
                                                                const tokenizer::Tokenizer& tokenizer) {
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<data::SplitReader> reader, store.OpenTrain(dataset_id));
  return ReadPreferencePairs(*reader, absl::StrCat("dataset '", dataset_id, "' train"), format, tokenizer);
}

absl::StatusOr<std::vector<TrainingExample>> LoadTrainingExamples(const data::DatasetStore& store,
                                                                  const std::string& dataset_id,
                                                                  tokenizer::PromptFormat format,
                                                                  const tokenizer::Tokenizer& tokenizer) {
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<data::SplitReader> reader, store.OpenTrain(dataset_id));
  std::vector<TrainingExample> examples;
  data::Example example;
  while (true) {
    QLORAD_ASSIGN_OR_RETURN(bool more, reader->Next(&example));
    if (!more) break;
    auto rendered = RenderTrainingExample(example, format, tokenizer);
    if (!rendered.ok())
      return absl::Status(rendered.status().code(), absl::StrCat("dataset '", dataset_id, "' train line ", example.line,
                                                                 ": ", rendered.status().message()));
    examples.push_back(std::move(rendered).value());
  }
  return examples;
}

}  // namespace qlorad
