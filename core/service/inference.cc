// ServiceCore: inference — generation (unary and streamed) and label scoring, with an
// adapter resolved from an id or alias.
#include "absl/strings/str_cat.h"
#include "core/service/core_impl.h"
#include "core/constrain/token_vocabulary.h"
#include "core/tokenizer/prompt_format.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kCancelled: return "cancelled";
    default: return "length";
  }
}

}  // namespace

absl::StatusOr<GenerateOutput> ServiceCoreImpl::Generate(const GenerateInput& input, const TextPieceCallback& on_piece) {
  GenerateOutput out;
  if (!input.adapter.empty()) {
    QLORAD_ASSIGN_OR_RETURN(out.adapter_id, adapters_->Resolve(input.adapter));
  }
  serve::GenerateCall call;
  call.adapter_id = out.adapter_id;
  call.prompt = input.prompt;
  call.input = input.input;
  call.raw_prompt = input.raw_prompt;
  for (const ChatTurn& turn : input.messages) call.messages.push_back({turn.role, turn.content});
  if (!call.messages.empty()) {
    QLORAD_ASSIGN_OR_RETURN(call.format, adapters_->TrainedPromptFormat(out.adapter_id));
  }
  call.max_new_tokens = input.max_new_tokens;  // 0: as many as fit
  call.sampling = {input.temperature, input.top_k, input.top_p, input.seed};
  call.stop = input.stop;
  call.constraint = input.constraint;
  call.top_logprobs = input.top_logprobs;
  QLORAD_ASSIGN_OR_RETURN(serve::GenerateOutcome outcome, engine_->Generate(call, on_piece));
  drift_->Observe(out.adapter_id, std::move(outcome.prompt_ids));  // enqueue only: drift is computed elsewhere
  const tokenizer::Tokenizer& tok = engine_->tokenizer();
  auto token_text = [&](int64_t id) { return constrain::TokenText(tok, static_cast<int32_t>(id)); };
  for (size_t i = 0; i < outcome.logprobs.size(); ++i) {
    TokenLogprobInfo info{token_text(outcome.tokens[i]), outcome.logprobs[i].logprob, {}};
    for (const auto& [id, lp] : outcome.logprobs[i].top) info.top.emplace_back(token_text(id), lp);
    out.logprobs.push_back(std::move(info));
  }
  out.text = std::move(outcome.text);
  out.tokens = std::move(outcome.tokens);
  out.finish_reason = FinishReasonName(outcome.finish_reason);
  out.prompt_tokens = outcome.prompt_tokens;
  out.time_to_first_token_seconds = outcome.time_to_first_token_seconds;
  out.total_seconds = outcome.total_seconds;
  return out;
}

absl::StatusOr<ClassifyOutput> ServiceCoreImpl::Classify(const std::string& adapter, const std::string& text,
                                                         const std::vector<std::string>& labels) {
  ClassifyOutput out;
  if (!adapter.empty()) {
    QLORAD_ASSIGN_OR_RETURN(out.adapter_id, adapters_->Resolve(adapter));
  }
  QLORAD_ASSIGN_OR_RETURN(serve::LabelScores scores, engine_->ScoreLabels(out.adapter_id, text, labels));
  drift_->Observe(out.adapter_id, std::move(scores.prompt_ids));
  out.labels = scores.labels;
  out.log_likelihoods = scores.log_likelihoods;
  out.predicted = scores.predicted;
  return out;
}

}  // namespace qlorad::service
