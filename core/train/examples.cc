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
