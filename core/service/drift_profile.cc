#include "core/service/drift_profile.h"

#include <memory>
#include <vector>

#include "core/tokenizer/prompt_format.h"
#include "core/train/examples.h"
#include "core/util/status_macros.h"

namespace qlorad::service {

absl::Status BuildDriftProfile(const data::DatasetStore& datasets, serve::ServingEngine& engine, DriftTracker& drift,
                               const std::string& dataset_id, const std::string& dir) {
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<data::SplitReader> reader, datasets.OpenTrain(dataset_id));
  std::vector<std::vector<int64_t>> prompts;
  data::Example example;
  while (true) {
    QLORAD_ASSIGN_OR_RETURN(bool more, reader->Next(&example));
    if (!more) break;
    TrainingExample rendered;
    if (example.format == data::DatasetFormat::kPreference) {  // both sides share the prompt
      QLORAD_ASSIGN_OR_RETURN(PreferencePair pair,
                              RenderPreferencePair(example, engine.prompt_format(), engine.tokenizer()));
      rendered = std::move(pair.chosen);
    } else {
      QLORAD_ASSIGN_OR_RETURN(rendered, RenderTrainingExample(example, engine.prompt_format(), engine.tokenizer()));
    }
    // What a request carries: everything before the completion.
    std::vector<int64_t> prompt(rendered.ids.begin(), rendered.ids.begin() + tokenizer::PromptLength(rendered.trainable));
    if (!prompt.empty()) prompts.push_back(std::move(prompt));
  }
  return drift.BuildProfile(prompts, dir + "/drift_profile.json");
}

}  // namespace qlorad::service
