#include "core/service/engine_scorer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "core/tokenizer/instruction_prompt.h"
#include "core/tokenizer/prompt_format.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

// The label a free-form answer names: the first label the trimmed, lower-cased answer
// starts with; otherwise the answer itself (counted as wrong).
std::string MatchLabel(const std::string& answer, const std::vector<std::string>& labels) {
  std::string a = std::string(absl::StripAsciiWhitespace(answer));
  const std::string lower = absl::AsciiStrToLower(a);
  for (const auto& label : labels)
    if (absl::StartsWith(lower, absl::AsciiStrToLower(label))) return label;
  return a;
}

}  // namespace

absl::StatusOr<std::string> EngineScorer::Classify(const std::string& adapter_id, const std::string& text,
                                                   const std::vector<std::string>& labels, const std::string& scoring) {
  if (scoring == "constrained") {
    QLORAD_ASSIGN_OR_RETURN(serve::LabelScores s, engine_->ConstrainedChoice(adapter_id, text, labels));
    return s.predicted;
  }
  if (scoring == "generation") {
    serve::GenerateCall call{adapter_id, tokenizer::kClassificationInstruction, text, false, 8, {}};
    QLORAD_ASSIGN_OR_RETURN(serve::GenerateOutcome o, engine_->Generate(call));
    return MatchLabel(o.text, labels);
  }
  QLORAD_ASSIGN_OR_RETURN(serve::LabelScores s, engine_->ScoreLabels(adapter_id, text, labels));
  return s.predicted;
}

std::string EngineScorer::prompt_format() const {
  return std::string(tokenizer::PromptFormatName(engine_->prompt_format()));
}

absl::StatusOr<std::string> EngineScorer::Generate(const std::string& adapter_id, const std::string& prompt,
                                                   const std::string& input, int64_t max_new_tokens) {
  serve::GenerateCall call{adapter_id, prompt, input, false, max_new_tokens, {}};
  QLORAD_ASSIGN_OR_RETURN(serve::GenerateOutcome o, engine_->Generate(call));
  return o.text;
}

absl::StatusOr<std::vector<double>> EngineScorer::CompletionLogLikelihoods(const std::string& adapter_id,
                                                                          const std::string& prompt,
                                                                          const std::vector<std::string>& completions) {
  return engine_->ScoreCompletions(adapter_id, prompt, completions);
}

}  // namespace qlorad::service
