// Turns stored dataset examples into token ids + a trainable mask through a
// prompt format, so the loss covers completions only.
#ifndef QLORAD_CORE_TRAIN_EXAMPLES_H_
#define QLORAD_CORE_TRAIN_EXAMPLES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset_store.h"
#include "core/data/example.h"
#include "core/tokenizer/prompt_format.h"
#include "core/tokenizer/tokenizer.h"
#include "core/train/trainer.h"

namespace qlorad {

// Alpaca: instruction/input -> output; prompt/completion; chat: assistant turns
// trainable; classification: tokenizer::RenderClassification (text -> label).
absl::StatusOr<TrainingExample> RenderTrainingExample(const data::Example& example, tokenizer::PromptFormat format,
                                                      const tokenizer::Tokenizer& tokenizer);

// Reads the TRAIN split of `dataset_id` (the only split the trainer can open)
// and renders every example. Errors name the dataset line.
absl::StatusOr<std::vector<TrainingExample>> LoadTrainingExamples(const data::DatasetStore& store,
                                                                  const std::string& dataset_id,
                                                                  tokenizer::PromptFormat format,
                                                                  const tokenizer::Tokenizer& tokenizer);

// A preference example's prompt rendered with each completion (prompt/completion
// rendering: the completion's tokens trainable). FAILED_PRECONDITION for other formats.
absl::StatusOr<PreferencePair> RenderPreferencePair(const data::Example& example, tokenizer::PromptFormat format,
                                                    const tokenizer::Tokenizer& tokenizer);

// Every example of `reader` as a pair; errors name `what` and the line.
absl::StatusOr<std::vector<PreferencePair>> ReadPreferencePairs(data::SplitReader& reader, const std::string& what,
                                                               tokenizer::PromptFormat format,
                                                               const tokenizer::Tokenizer& tokenizer);

// The TRAIN split of a preference dataset as pairs (LoadTrainingExamples' counterpart for DPO).
absl::StatusOr<std::vector<PreferencePair>> LoadPreferencePairs(const data::DatasetStore& store,
                                                                const std::string& dataset_id,
                                                                tokenizer::PromptFormat format,
                                                                const tokenizer::Tokenizer& tokenizer);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_EXAMPLES_H_
