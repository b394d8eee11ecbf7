// OpenAI-compatible response bodies: completions and chat completions, whole or as
// stream chunks, with usage and log-probabilities in OpenAI's shapes.
#ifndef QLORAD_SERVER_DAEMON_OPENAI_RESPONSE_H_
#define QLORAD_SERVER_DAEMON_OPENAI_RESPONSE_H_

#include <cstdint>
#include <string>

#include "core/service/service_core.h"
#include "nlohmann/json.hpp"
#include "server/daemon/openai_request.h"

namespace qlorad::server {

// What every body of one response shares.
struct ResponseIdentity {
  std::string id;  // cmpl-... / chatcmpl-...
  int64_t created = 0;
  std::string model;
};
ResponseIdentity NewResponseIdentity(const OpenAiRequest& request);

nlohmann::json CompletionBody(const OpenAiRequest& request, const ResponseIdentity& who, const service::GenerateOutput& out);

// One stream chunk: `text` as the choice's text (completions) or delta.content
// (chat; `first` adds the role); `finish_reason` null until the last chunk.
nlohmann::json ChunkBody(const OpenAiRequest& request, const ResponseIdentity& who, const std::string& text, bool first,
                         const char* finish_reason);
// The last chunk: finish reason (and log-probabilities when asked for); usage
// follows in a chunk of its own when stream_options.include_usage.
nlohmann::json FinalChunkBody(const OpenAiRequest& request, const ResponseIdentity& who, const service::GenerateOutput& out);
nlohmann::json UsageChunkBody(const OpenAiRequest& request, const ResponseIdentity& who, const service::GenerateOutput& out);

// {"error": {message, type, param, code}}; an empty param or code is null.
nlohmann::json ErrorBody(const std::string& message, const std::string& type, const std::string& param = "",
                         const std::string& code = "");

// Server-sent event framing of one JSON value (or the literal [DONE]).
std::string SseEvent(const std::string& data);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_OPENAI_RESPONSE_H_
