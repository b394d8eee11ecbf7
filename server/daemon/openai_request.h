// OpenAI-compatible request bodies (/v1/completions, /v1/chat/completions) ->
// the core's GenerateInput. Field names, types and defaults follow OpenAI's API
// reference; vLLM's extensions guided_json / guided_choice / guided_regex and
// top_k are accepted too.
//
// Contract: every refusal is INVALID_ARGUMENT whose message starts with the
// offending field ("max_tokens: must be an integer"), so the front end can name
// it as OpenAI's `param`. Unknown fields are refused as OpenAI does
// ("Unrecognized request argument"). Settings OpenAI has but qlorad does not
// implement (n > 1, penalties, logit_bias, tools, echo, suffix, best_of > 1)
// are refused naming the field, never silently ignored.
#ifndef QLORAD_SERVER_DAEMON_OPENAI_REQUEST_H_
#define QLORAD_SERVER_DAEMON_OPENAI_REQUEST_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/service/service_core.h"

namespace qlorad::server {

struct OpenAiRequest {
  bool chat = false;
  std::string model;              // as the client named it (echoed in responses)
  service::GenerateInput input;   // input.adapter = the model, or "" for the base
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  int64_t logprobs = -1;          // >= 0: report log-probabilities with this many alternatives
};

// `base_model` is the name under which the base model is served.
absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(const std::string& body, bool chat, const std::string& base_model);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_OPENAI_REQUEST_H_
