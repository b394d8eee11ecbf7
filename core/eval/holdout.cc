#include "core/eval/holdout.h"

#include "absl/strings/str_cat.h"
#include "core/eval/evaluation_access.h"
#include "core/util/status_macros.h"

namespace qlorad::eval {

absl::StatusOr<HoldoutItems> ReadHoldout(const data::DatasetStore& datasets, const std::string& dataset_id,
                                         int64_t max_examples) {
  QLORAD_ASSIGN_OR_RETURN(auto reader, EvaluationAccess::OpenHoldout(datasets, dataset_id));
  HoldoutItems items;
  data::Example ex;
  while (max_examples <= 0 || static_cast<int64_t>(items.ids.size()) < max_examples) {
    QLORAD_ASSIGN_OR_RETURN(bool more, reader->Next(&ex));
    if (!more) break;
    items.ids.push_back(absl::StrCat("holdout-line-", ex.line));
    switch (ex.format) {
      case data::DatasetFormat::kClassification:
        items.prompts.push_back(ex.text), items.inputs.push_back(""), items.references.push_back(ex.label);
        break;
      case data::DatasetFormat::kPromptCompletion:
        items.task = TaskKind::kGeneration;
        items.prompts.push_back(ex.prompt), items.inputs.push_back(""), items.references.push_back(ex.completion);
        break;
      case data::DatasetFormat::kAlpaca:
        items.task = TaskKind::kGeneration;
        items.prompts.push_back(ex.instruction), items.inputs.push_back(ex.input), items.references.push_back(ex.output);
        break;
      case data::DatasetFormat::kPreference:
        items.preference = true;
        // inputs: what a human reviewer needs beside the prompt (the scorer reads chosen/rejected).
        items.prompts.push_back(ex.prompt), items.references.push_back(kPreferredLabel);
        items.inputs.push_back(absl::StrCat("chosen: ", ex.chosen, "\nrejected: ", ex.rejected));
        items.chosen.push_back(ex.chosen), items.rejected.push_back(ex.rejected);
        break;
      default:
        return absl::FailedPreconditionError(absl::StrCat("dataset '", dataset_id,
                                                          "': chat datasets are not evaluated yet (hint: use prompt_completion)"));
    }
  }
  if (items.ids.empty()) return absl::FailedPreconditionError(absl::StrCat("dataset '", dataset_id, "' has an empty hold-out"));
  return items;
}

}  // namespace qlorad::eval
